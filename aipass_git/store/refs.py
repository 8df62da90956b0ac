"""Compare-and-swap ref updates through one long-lived `git update-ref --stdin`.

Each call is one transaction (`start` / `prepare` / `commit`): every ref in it moves only
if it still holds the expected old value, and all of them move or none does. git exits
when a transaction fails; the next call starts a fresh process. A transaction that fails
on a stale `.lock` left by a killed writer removes it (locks.py) and runs again.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from aipass_git.core import faults, git
from aipass_git.core.errors import AipassError, GitError, signal_cause
from aipass_git.store import locks

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
        self.blocked_by: Path | None = None  # after a failed apply: a lock a live writer holds

    def _start(self) -> subprocess.Popen:
        if self._proc is None or self._proc.poll() is not None:
            self._proc = subprocess.Popen(
                ["git", *NO_HOOKS, "update-ref", "--stdin"], cwd=self.root, env={**os.environ, **TOOL_WRITE},
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            )
        return self._proc

    def apply(self, updates: list[RefUpdate]) -> bool:
        """True when every update was applied; False when any ref had moved or is locked by
        a live writer (nothing applied then)."""
        self.blocked_by = None
        for _ in range(len(updates) + 2):  # each retry follows the removal of one stale lock
            applied, lock = self._transaction(updates)
            if applied or lock is None:
                return applied
            if not locks.clear_stale(lock):
                self.blocked_by = lock
                return False
        return False

    def _transaction(self, updates: list[RefUpdate]) -> tuple[bool, Path | None]:
        proc = self._start()
        lines = ["start"]
        for u in updates:
            old = u.old or self.zero
            lines.append(f"delete {u.ref} {old}" if u.new is None else f"update {u.ref} {u.new} {old}")
        try:
            proc.stdin.write(("\n".join([*lines, "prepare", ""])).encode())
            proc.stdin.flush()
            if [proc.stdout.readline() for _ in range(2)] != [b"start: ok\n", b"prepare: ok\n"]:
                return self._failed(proc)
            faults.point("refs-locked")  # every ref of the transaction is locked by git now
            proc.stdin.write(b"commit\n")
            proc.stdin.flush()
        except BrokenPipeError:
            return self._failed(proc)
        if proc.stdout.readline() == b"commit: ok\n":
            return True, None
        return self._failed(proc)

    def _failed(self, proc: subprocess.Popen) -> tuple[bool, Path | None]:
        proc.stdin.close()
        proc.wait()
        stderr = proc.stderr.read().decode("utf-8", "replace")
        self._proc = None
        lock = locks.locked_path(stderr)  # a ref's lock, or packed-refs.lock
        if lock is not None:
            return False, lock
        if "but expected" in stderr or "already exists" in stderr or "unable to resolve reference" in stderr \
                or "cannot lock ref" in stderr:
            return False, None
        raise AipassError(f"git update-ref failed: {stderr.strip() or 'no output'}", "check the repository with: git fsck")

    def close(self) -> None:
        git.finish(self._proc)
        self._proc = None


def move(root: Path, ref: str, new: str, old: str | None, message: str, *, zero: str = ZERO) -> bool:
    """One compare-and-swap of REF with a reflog MESSAGE (user-visible branches keep their
    reflog); False when REF no longer holds OLD. A stale lock is removed, as above."""
    args = ["update-ref", "-m", message, ref, new, old or zero]
    proc = locks.run_git(args, root, env=TOOL_WRITE)
    if proc.returncode == 0:
        return True
    stderr = proc.stderr.decode("utf-8", "replace")
    if proc.returncode < 0:
        # git was stopped (a file size limit, a kill) holding the ref's locks: they are stale
        for lock in _ref_locks(root, ref):
            locks.clear_stale(lock)
        raise GitError(args, proc.returncode, stderr, "nothing was changed; " + signal_cause(-proc.returncode)[1])
    if "but expected" in stderr or "unable to resolve" in stderr or "already exists" in stderr:
        return False
    lock = locks.locked_path(stderr)
    if lock is not None:
        raise AipassError(f"{ref} is locked: {locks.describe(lock)}",
                          "another git command is writing it; retry when it is done")
    said = stderr.strip().splitlines()
    raise AipassError(f"git update-ref {ref} failed: {said[-1] if said else 'no output'}",
                      "check the repository with: git fsck")


def _ref_locks(root: Path, ref: str) -> list[Path]:
    """The lock files `update-ref REF` takes: REF's own, and HEAD's when HEAD points at it."""
    return git.git_paths(root, f"{ref}.lock", "HEAD.lock")
