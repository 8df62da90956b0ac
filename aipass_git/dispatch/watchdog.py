"""Run one provider attempt and watch it: start-up, stall and run timeouts, cancel, outcome.

Start-up means the CLI showed a sign of life (a first byte of output, or activity on its
desk), not that it finished: the AI CLIs stream JSON events from their first second. A
stall (no output and no desk activity) has its own timeout, separate from the run's.
Whatever ends the attempt, every process it started is killed before this returns
(proctree.py): no attempt outlives its attempt. The outcome comes from the exit code and
the provider's structured output (outcome.py), never from a terminal screen.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from aipass_git.dispatch import outcome as outcome_mod, proctree

POLL_SECONDS = 0.05
ACTIVITY_SECONDS = 1.0  # how often the desk is looked at for activity
# reasons after which another start cannot help: the same argv, prompt or turn limit fail again
FINAL_REASONS = ("missing-binary", "start-failed", "turn-limit", "cancelled")


@dataclass(frozen=True)
class Limits:
    startup_seconds: float
    stall_seconds: float
    run_seconds: float


@dataclass
class Attempt:
    ok: bool
    # ok | exit | error-result | turn-limit | startup-timeout | stall-timeout | run-timeout
    # | cancelled | missing-binary | start-failed
    reason: str
    exit_code: int | None
    stderr_tail: str
    duration: float
    outcome: outcome_mod.Outcome = field(default_factory=outcome_mod.Outcome)
    leftovers: int = 0  # processes of the attempt still running at its end, then killed

    @property
    def rate_limited(self) -> bool:
        return self.outcome.rate_limited or (not self.ok and bool(outcome_mod.RATE_LIMIT.search(self.stderr_tail)))

    @property
    def final(self) -> bool:
        return self.reason in FINAL_REASONS


def tail(path: Path, lines: int = 20, limit: int = 8192) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - limit))
            data = fh.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


def run_once(
    argv: list[str],
    *,
    cwd: Path,
    env: dict[str, str],
    run_dir: Path,
    run_id: str,
    limits: Limits,
    stdin: Path | None = None,
    activity: Callable[[], object] | None = None,
    on_start: Callable[[int], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> Attempt:
    run_dir.mkdir(parents=True, exist_ok=True)
    out_path, err_path = run_dir / "stdout.log", run_dir / "stderr.log"
    started = time.monotonic()
    try:
        proc = _start(argv, cwd, {**env, proctree.RUN_ENV: run_id}, stdin, out_path, err_path)
    except (FileNotFoundError, PermissionError) as exc:
        return Attempt(False, "missing-binary", None, f"{argv[0]}: {exc.strerror}", 0.0)
    except (OSError, ValueError) as exc:
        # E2BIG (one argument over 128 KiB), a NUL byte in an argument: the same argv fails again
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return Attempt(False, "start-failed", None, f"{argv[0]} could not be started: {detail}", 0.0)
    if on_start:
        on_start(proc.pid)
    reason = _watch(proc, out_path, err_path, started, limits, activity, cancelled)
    leftovers = proctree.kill_run(run_id, group=proc.pid, own_tree=True) - {proc.pid}
    code = proc.wait()
    proctree.reap_orphans()
    duration = time.monotonic() - started
    stderr_tail = tail(err_path)
    result = outcome_mod.read(out_path)
    if reason == "exit":
        if result.turn_limit:
            reason = "turn-limit"
        elif result.is_error:
            reason = "error-result"
        elif code == 0:
            reason = "ok"
    if not stderr_tail and reason not in ("ok", "cancelled"):
        stderr_tail = tail(out_path, lines=5)  # some CLIs print their errors on stdout
    return Attempt(reason == "ok", reason, code, stderr_tail, duration, result, len(leftovers))


def _start(argv, cwd, env, stdin: Path | None, out_path: Path, err_path: Path) -> subprocess.Popen:
    with open(out_path, "wb") as out, open(err_path, "wb") as err, \
            (open(stdin, "rb") if stdin else open(os.devnull, "rb")) as inp:
        return subprocess.Popen(
            argv, cwd=cwd, env=env, stdin=inp, stdout=out, stderr=err,
            start_new_session=True,  # its own group, so a signal to us is not one to it
            preexec_fn=proctree.die_with_parent,
        )


def _watch(proc, out_path: Path, err_path: Path, started: float, limits: Limits, activity, cancelled) -> str:
    """Poll until the provider exits or a limit is reached; returns why the wait ended."""
    last_size = 0
    last_activity = activity() if activity else None
    last_sign = started  # the last time output grew or the desk changed
    alive_seen = False
    next_look = started + ACTIVITY_SECONDS
    while proc.poll() is None:
        now = time.monotonic()
        size = _size(out_path) + _size(err_path)
        if size != last_size:
            last_size, last_sign, alive_seen = size, now, True
        if activity and now >= next_look:
            next_look = now + ACTIVITY_SECONDS
            seen = activity()
            if seen != last_activity:
                last_activity, last_sign, alive_seen = seen, now, True
        if cancelled and cancelled():
            return "cancelled"
        if not alive_seen and now - started > limits.startup_seconds:
            return "startup-timeout"
        if alive_seen and now - last_sign > limits.stall_seconds:
            return "stall-timeout"
        if now - started > limits.run_seconds:
            return "run-timeout"
        time.sleep(POLL_SECONDS)
    return "exit"


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
