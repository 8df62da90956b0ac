"""Run-time state of woken agents, under `<git common dir>/aipass/` and never committed.

    events.jsonl                 the event log: one JSON object per line, appended
    locks/agent-<name>.lock      held by the one supervisor running the agent's session
    agents/<name>/state.json     what that supervisor is doing (for `git aipass status`)
    runs/<name>/<run id>/        prompt, stdout, stderr of each provider start
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

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
        try:
            return json.loads(self.state_path(agent).read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return {"state": "idle"}

    def write_state(self, agent: str, **state: Any) -> None:
        write_atomic(self.state_path(agent), encode(state))

    def agent_lock(self, agent: str):
        from filelock import FileLock

        self.lock_path(agent).parent.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.lock_path(agent)))

    def is_busy(self, agent: str) -> bool:
        """Whether a live supervisor holds the agent's session lock."""
        from filelock import Timeout

        lock = self.agent_lock(agent)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            return True
        lock.release()
        return False

    def recover(self, agent: str) -> bool:
        """Clear what a crashed supervisor left: its state, and a provider still running.

        The session lock itself is an OS lock and died with the process. Returns whether
        anything was cleared.
        """
        state = self.read_state(agent)
        if state.get("state") != "running" or self.is_busy(agent):
            return False
        pgid = state.get("provider_pgid")
        if pgid:
            try:
                os.killpg(int(pgid), signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self.write_state(agent, state="idle", since=clock.utc_now(), recovered_from=state.get("pid"))
        self.log("recovered", agent, stale_pid=state.get("pid"), dispatch=state.get("dispatch"))
        return True
