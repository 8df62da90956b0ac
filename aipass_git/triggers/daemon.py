"""`git aipass daemon`: one long-lived process per repository that runs the sweeps.

It holds the daemon lock (a second start names the holder) and watches what changes when
an event happens: the mtimes of the event-ref folders, packed-refs, the base branch's ref
and the runtime log, a few stats per poll and no git process. When one moved it sweeps;
it also sweeps every `tick` seconds, for schedules and the built-in sweeps, and fails the
plan phases that ran past their timeout. Whatever
happened while it was down is the first sweep's (the sweep keeps its own positions).
While it runs, `kick_triggers` leaves the sweeps to it, a thread answers memory
searches with the model kept loaded (memory/served.py). SIGTERM (`daemon stop`) ends it
after the sweep in hand. (Commands start fast with or without it: core/handoff.py.)
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

from aipass_git.agents.session import Session
from aipass_git.core import clock, config as config_mod, handoff
from aipass_git.core.errors import AipassError
from aipass_git.core.files import event_ref_folders, stamps
from aipass_git.core.repo import Repo
from aipass_git.dispatch import path_claims
from aipass_git.dispatch.runtime import Runtime
from aipass_git.flow import advance
from aipass_git.memory import served
from aipass_git.plans import plan as plan_mod
from aipass_git.store import locks
from aipass_git.store.events import EventStore
from aipass_git.triggers import engine

POLL = 0.5  # seconds between looks at the watched files
TICK = 30.0  # seconds between sweeps when nothing changed (schedules, built-in sweeps)


def lock_of(repo: Repo) -> locks.Held:
    return locks.Held(repo.runtime_dir / "locks" / "daemon.lock", f"the aipass daemon of {repo.root}")


def holder(repo: Repo) -> dict | None:
    """The running daemon's holder record (pid, since), or None when none runs."""
    found = lock_of(repo).holder()
    pid = found.get("pid")
    if not isinstance(pid, int):
        return None
    try:
        os.kill(pid, 0)
    except OSError:
        return None
    return found


def watched(repo: Repo) -> list[Path]:
    base = repo.common_dir / "refs" / "heads" / config_mod.load(repo).base_branch
    return event_ref_folders(repo.common_dir) + [base, base.parent, Runtime(repo).events_path,
                                                 repo.root / ".aipass" / "triggers.yaml"]


def run(repo: Repo, *, poll: float = POLL, tick: float = TICK, say=print) -> int:
    """Run until SIGTERM or SIGINT; returns the exit code."""
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append("TERM"))
    signal.signal(signal.SIGINT, lambda *_: stopping.append("INT"))
    lock = lock_of(repo)
    try:
        with lock.acquired(0, "stop it first: git aipass daemon stop"):
            runtime = Runtime(repo)
            runtime.log("daemon-started", None, pid=os.getpid())
            say(f"aipass daemon running (pid {os.getpid()}); stop it with: git aipass daemon stop")
            paths = watched(repo)
            last_sig, last_sweep, last_error = None, 0.0, None
            # memory searches answered with the model kept loaded (memory/served.py)
            serving_stop = threading.Event()
            serving = threading.Thread(target=served.serve, args=(repo, serving_stop), name="memory-search", daemon=True)
            serving.start()
            try:
                while not stopping:
                    sig = stamps(paths)
                    if sig != last_sig or time.monotonic() - last_sweep >= tick:
                        if time.monotonic() - last_sweep >= tick:
                            _plan_timeouts(repo, runtime)
                            _freed_claims(repo, runtime)
                        last_sig, last_sweep = sig, time.monotonic()
                        try:
                            engine.sweep(repo)
                            last_error = None
                        except AipassError as exc:  # a broken triggers.yaml: logged once per change; it goes on
                            if exc.message != last_error:
                                runtime.log("triggers-broken", None, error=exc.message)
                            last_error = exc.message
                        last_sig = stamps(paths)  # what the sweep itself wrote is seen
                    time.sleep(poll)
            finally:
                serving_stop.set()
                serving.join(timeout=2.0)  # it removes its socket; a search in hand may take longer
                served.socket_path(repo).unlink(missing_ok=True)
                runtime.log("daemon-stopped", None, pid=os.getpid(), signal=stopping[0] if stopping else None)
                lock.holder_path.unlink(missing_ok=True)
    except AipassError as exc:
        h = lock.holder()
        if h.get("pid") and h.get("pid") != os.getpid():
            raise AipassError(f"a daemon already runs for this repository: pid {h['pid']} since {h.get('since', '?')}",
                              "stop it first: git aipass daemon stop") from None
        raise exc
    return 0


def _plan_timeouts(repo: Repo, runtime: Runtime) -> None:
    """Each tick: plans with a phase past its timeout are advanced (the phase fails and
    its plan's owner is told), with or without rules."""
    now = clock.parse(clock.utc_now())
    try:
        with EventStore(repo) as store:
            late = [d["id"] for d in plan_mod.PlanBook(store).all()
                    if d["state"] == "open" and any(plan_mod.overdue(p, now) for p in d["phases"])]
        if late:
            session = Session.of_orchestrator(repo)
            for plan_id in late:
                advance.advance(repo, plan_id, session)
    except AipassError as exc:  # an unreadable plan is the audit's and doctor's finding
        runtime.log("plan-timeouts-failed", None, error=exc.message)


def _freed_claims(repo: Repo, runtime: Runtime) -> None:
    """Each tick: dispatches waiting for a claim that expired or was released elsewhere
    (a sync) start again."""
    try:
        path_claims.wake_waiters(repo, only_freed=True)
    except AipassError as exc:
        runtime.log("claim-waits-failed", None, error=exc.message)


def stop(repo: Repo, *, wait: float = 10.0) -> dict | None:
    """SIGTERM the running daemon and wait for it to go; returns what it was (None: none ran)."""
    found = holder(repo)
    if found is None:
        return None
    os.kill(found["pid"], signal.SIGTERM)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if holder(repo) is None:  # it removes its record as it ends (or it is gone)
            return found
        time.sleep(0.05)
    raise AipassError(f"the daemon (pid {found['pid']}) did not stop within {wait:g} s",
                      f"kill it: kill {found['pid']}")


def status(repo: Repo) -> dict:
    found = holder(repo)
    return {"running": found is not None, "pid": found.get("pid") if found else None,
            "since": found.get("since") if found else None,
            # commands are handed to the repository's warm process (core/handoff.py) while it listens
            "warm": handoff.serving(handoff.socket_in(str(repo.common_dir))),  # a killed one's socket may be left
            **engine.status(repo)}


def unit(repo: Repo, command: list[str]) -> tuple[str, str]:
    """(file name, text) of a systemd user unit that keeps the daemon running."""
    name = f"aipass-{_slug(repo.root)}.service"
    text = ("[Unit]\n"
            f"Description=aipass-git daemon for {repo.root}\n\n"
            "[Service]\n"
            f"WorkingDirectory={repo.root}\n"
            f"ExecStart={' '.join(json.dumps(w) if ' ' in w else w for w in command)} daemon run\n"
            "Restart=on-failure\nRestartSec=10\n\n"
            "[Install]\nWantedBy=default.target\n")
    return name, text


def cron_line(repo: Repo, command: list[str]) -> str:
    """A crontab line that starts the daemon at boot and every 10 minutes if it is not running
    (a second start leaves at once, naming the one that runs)."""
    words = " ".join(f"'{w}'" for w in command)
    return f"@reboot cd '{repo.root}' && {words} daemon run >/dev/null 2>&1\n" \
           f"*/10 * * * * cd '{repo.root}' && {words} daemon run >/dev/null 2>&1\n"


def _slug(path: Path) -> str:
    return "".join(c if c.isalnum() else "-" for c in path.name)[:40] or "repo"
