"""Compare-and-swap ref updates through one long-lived `git update-ref --stdin`.

Each call is one transaction (`start` / `prepare` / `commit`): every ref in it moves only
if it still holds the expected old value, and all of them move or none does. git exits
when a transaction fails; the next call starts a fresh process.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from aipass_git.core import git
from aipass_git.core.errors import AipassError

ZERO = "0" * 40
# Marks ref updates made by aipass itself: the reference-transaction hook wakes agents for
# mail that arrives from elsewhere (a fetch), not for what the tool just wrote.
TOOL_WRITE = {"AIPASS_TOOL_WRITE": "1"}
# ...and the hook is not even started for them: two shell starts per send would double a
# send's cost. (A user's own reference-transaction hook does not see aipass's mail writes.)
NO_HOOKS = ["-c", "core.hooksPath=/dev/null"]


@dataclass(frozen=True)
class RefUpdate:
    ref: str
    new: str | None  # None deletes the ref
    old: str | None  # None: the ref must not exist yet


class RefTransactions:
    def __init__(self, root: Path, zero: str = ZERO) -> None:
        self.root = root
        self.zero = zero
        self._proc: subprocess.Popen | None = None

    def _start(self) -> subprocess.Popen:
        if self._proc is None or self._proc.poll() is not None:
            self._proc = subprocess.Popen(
                ["git", *NO_HOOKS, "update-ref", "--stdin"], cwd=self.root, env={**os.environ, **TOOL_WRITE},
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            )
        return self._proc

    def apply(self, updates: list[RefUpdate]) -> bool:
        """True when every update was applied; False when any ref had moved (nothing applied)."""
        proc = self._start()
        lines = ["start"]
        for u in updates:
            old = u.old or self.zero
            lines.append(f"delete {u.ref} {old}" if u.new is None else f"update {u.ref} {u.new} {old}")
        lines += ["prepare", "commit", ""]
        try:
            proc.stdin.write("\n".join(lines).encode())
            proc.stdin.flush()
        except BrokenPipeError:
            return self._failed(proc)
        replies = [proc.stdout.readline() for _ in range(3)]
        if replies == [b"start: ok\n", b"prepare: ok\n", b"commit: ok\n"]:
            return True
        return self._failed(proc)

    def _failed(self, proc: subprocess.Popen) -> bool:
        proc.stdin.close()
        proc.wait()
        stderr = proc.stderr.read().decode("utf-8", "replace")
        self._proc = None
        if "but expected" in stderr or "already exists" in stderr or "unable to resolve reference" in stderr \
                or "cannot lock ref" in stderr:
            return False
        raise AipassError(f"git update-ref failed: {stderr.strip() or 'no output'}", "check the repository with: git fsck")

    def close(self) -> None:
        git.finish(self._proc)
        self._proc = None
