"""Run-time state of woken agents, under `<git common dir>/aipass/` and never committed.

    events.jsonl                 the event log: one JSON object per line, appended
    locks/agent-<name>.lock      held by the one supervisor running the agent's session
    locks/agent-<name>.pick.lock held while a dispatch is taken from the queue or cancelled
    agents/<name>/state.json     what that supervisor is doing (for `git aipass status`)
    agents/<name>/cancel/<id>    a request to cancel dispatch <id>
    agents/<name>/crashes.json   how often a supervisor died while running each dispatch
    runs/<name>/<run id>/        prompt, stdout, stderr of each provider start

A state other than "idle" while nobody holds the session lock means its supervisor died:
the lock is an OS lock and went with the process (see recovery.py).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from aipass_git.core import clock
from aipass_git.core.canonical import encode, write_atomic
from aipass_git.core.repo import Repo


class Runtime:
    def __init__(self, repo: Repo) -> None:
        self.root = repo.runtime_dir

    @property
    def events_path(self) -> Path:
        return self.root / "events.jsonl"

    def lock_path(self, agent: str) -> Path:
        return self.root / "locks" / f"agent-{agent}.lock"

    def state_path(self, agent: str) -> Path:
        return self.root / "agents" / agent / "state.json"

    def runs_dir(self, agent: str) -> Path:
        return self.root / "runs" / agent

    # -- the event log ------------------------------------------------------------------

    def log(self, event: str, agent: str | None = None, **fields: Any) -> dict[str, Any]:
        record = {"time": clock.utc_now(), "event": event, **({"agent": agent} if agent else {}), **fields}
        line = (json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8")
        self.events_path.parent.mkdir(parents=True, exist_ok=True)
        # one write() on an O_APPEND file: lines of concurrent writers never interleave
        fd = os.open(self.events_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
        return record

    def log_once(self, event: str, agent: str, *, dispatch: str, **fields: Any) -> None:
        """`log` EVENT for DISPATCH the first time only: a condition seen by every command
        that looks (an unverified dispatch) is one line in the log, not one per look."""
        marker = self.root / "logged" / f"{event}-{dispatch}"
        marker.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.close(os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        except FileExistsError:
            return
        self.log(event, agent, dispatch=dispatch, **fields)

    def events_since(self, offset: int) -> tuple[list[dict[str, Any]], int]:
        """Events appended after byte OFFSET, and the offset to read from next time (a line
        still being written is left for the next call)."""
        try:
            with open(self.events_path, "rb") as fh:
                fh.seek(offset)
                chunk = fh.read()
        except FileNotFoundError:
            return [], offset
        complete = chunk[: chunk.rfind(b"\n") + 1]
        out = []
        for line in complete.splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return out, offset + len(complete)

    def follow(self, *, from_end: bool = False, poll: float = 0.1, until: float | None = None,
               tick: Callable[[], None] | None = None) -> Iterator[dict[str, Any]]:
        """Events as they are appended, from the start of the log (or its end); TICK runs
        between polls; the iteration ends at the time.monotonic() deadline UNTIL."""
        offset = self.events_path.stat().st_size if from_end and self.events_path.exists() else 0
        while True:
            events, offset = self.events_since(offset)
            yield from events
            if tick is not None:
                tick()
            if until is not None and time.monotonic() >= until:
                return
            time.sleep(poll)

    def events(self) -> list[dict[str, Any]]:
        try:
            text = self.events_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        out = []
        for line in text.splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut by a crash; the rest of the log stays readable
        return out

    # -- per-agent state ----------------------------------------------------------------

    def read_state(self, agent: str) -> dict[str, Any]:
        # a plain string path: status reads a thousand of these, and pathlib's joins add up
        try:
            with open(f"{self.root}/agents/{agent}/state.json", encoding="utf-8") as fh:
                return json.loads(fh.read())
        except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError):
            return {"state": "idle"}

    def not_idle(self, agents: list[str]) -> list[str]:
        """Those of AGENTS whose state says a session runs (or ran, if it died)."""
        return [a for a in agents if self.read_state(a).get("state", "idle") != "idle"]

    def write_state(self, agent: str, **state: Any) -> None:
        write_atomic(self.state_path(agent), encode(state))

    def agent_lock(self, agent: str):
        from filelock import FileLock  # deferred: ~40 ms cold; `inbox` reads the state without locking

        self.lock_path(agent).parent.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.lock_path(agent)))

    def pick_lock(self, agent: str):
        """Held while the supervisor takes the next dispatch and while one is cancelled,
        so a queued dispatch is either started or cancelled, never both."""
        from filelock import FileLock  # deferred: ~40 ms cold; `inbox` reads the state without locking

        path = self.root / "locks" / f"agent-{agent}.pick.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        return FileLock(str(path), timeout=30)

    def at_work(self, agent: str) -> bool:
        """A session of AGENT runs: its state says so and a live supervisor holds its lock
        (the lock is tried only when the state is not idle, so an idle agent costs one read)."""
        return self.read_state(agent).get("state", "idle") != "idle" and self.is_busy(agent)

    def is_busy(self, agent: str) -> bool:
        """Whether a live supervisor holds the agent's session lock."""
        from filelock import Timeout  # deferred: ~40 ms cold; `inbox` reads the state without locking

        lock = self.agent_lock(agent)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            return True
        lock.release()
        return False

    # -- cancel requests ----------------------------------------------------------------

    def _cancel_path(self, agent: str, dispatch_id: str) -> Path:
        return self.root / "agents" / agent / "cancel" / dispatch_id

    def request_cancel(self, agent: str, dispatch_id: str, by: str) -> None:
        write_atomic(self._cancel_path(agent, dispatch_id), encode({"by": by, "time": clock.utc_now()}))

    def cancel_request(self, agent: str, dispatch_id: str) -> dict[str, Any] | None:
        """Who asked to cancel DISPATCH_ID, or None: polled by the watchdog, so one stat."""
        try:
            return json.loads(self._cancel_path(agent, dispatch_id).read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def clear_cancel(self, agent: str, dispatch_id: str) -> None:
        try:
            self._cancel_path(agent, dispatch_id).unlink()
        except FileNotFoundError:
            pass

    # -- supervisor crashes -------------------------------------------------------------

    def _crashes_path(self, agent: str) -> Path:
        return self.root / "agents" / agent / "crashes.json"

    def crashes(self, agent: str, dispatch_id: str) -> int:
        try:
            counts = json.loads(self._crashes_path(agent).read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return 0
        return int(counts.get(dispatch_id, 0))

    def count_crash(self, agent: str, dispatch_id: str) -> int:
        """One more crash while running DISPATCH_ID; returns the new count. Called by a
        recoverer holding the session lock, so the read-modify-write is not raced."""
        try:
            counts = json.loads(self._crashes_path(agent).read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            counts = {}
        counts[dispatch_id] = int(counts.get(dispatch_id, 0)) + 1
        write_atomic(self._crashes_path(agent), encode(counts))
        return counts[dispatch_id]

    def forget_crashes(self, agent: str, dispatch_id: str) -> None:
        path = self._crashes_path(agent)
        try:
            counts = json.loads(path.read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return
        if counts.pop(dispatch_id, None) is not None:
            write_atomic(path, encode(counts))
