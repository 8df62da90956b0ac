"""Locks that recover: git's `.lock` files left by killed processes, and aipass's own file
locks, which say who holds them.

Git guards a ref, HEAD, the index and packed-refs with a `<file>.lock` it creates
exclusively and renames into place when done. A process killed in between leaves the
file behind, and every later writer of that file fails until someone removes it. A git
lock is judged stale when no process has it open and it is older than STALE_SECONDS:
git holds one for milliseconds (and keeps index.lock and packed-refs.lock open while
writing them). aipass-git removes a stale lock only on files it writes itself, and only
while it holds its own lock for them, so no aipass writer is between its two steps.

aipass's own locks are OS locks (filelock): they die with their process, so they are
never stale. `Held` records its holder beside the lock, so that whoever waits can say
"locked by pid N since T" instead of failing without a reason.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from aipass_git.core import clock, git
from aipass_git.core.errors import AipassError

STALE_SECONDS = 0.5
_EXISTS = re.compile(r"Unable to create '([^']+\.lock)': File exists")


def locked_path(stderr: str) -> Path | None:
    """The `.lock` file that git's error says already exists, if it says so."""
    found = _EXISTS.search(stderr)
    return Path(found.group(1)) if found else None


def holders(path: Path) -> list[int]:
    """Pids of the processes that have PATH open (Linux /proc; elsewhere none are seen)."""
    target = os.path.realpath(path)
    found = []
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return []
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                    found.append(int(pid))
                    break
            except OSError:
                continue
    return found


def age(path: Path) -> float | None:
    try:
        return max(0.0, time.time() - path.stat().st_mtime)
    except FileNotFoundError:
        return None


def is_stale(path: Path, bound: float = STALE_SECONDS) -> bool:
    seconds = age(path)
    return seconds is not None and seconds >= bound and not holders(path)


def clear_stale(path: Path, *, wait: float = STALE_SECONDS) -> bool:
    """Remove the git lock PATH if it is stale, waiting up to WAIT seconds for a young one
    to age; True when it is gone (removed here or released by its holder)."""
    deadline = time.monotonic() + wait
    while True:
        seconds = age(path)
        if seconds is None:
            return True
        if seconds >= STALE_SECONDS and not holders(path):
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


def describe(path: Path) -> str:
    """'<path> (3 s old, open in pid 123)' for an error message."""
    seconds = age(path)
    if seconds is None:
        return f"{path} (gone now)"
    pids = holders(path)
    who = f", open in pid {', '.join(map(str, pids))}" if pids else ""
    return f"{path} ({seconds:.0f} s old{who})"


class Held:
    """An aipass file lock whose holder (pid, what, since) is recorded beside it."""
    def __init__(self, path: Path, what: str) -> None:
        self.path = path
        self.what = what
        self.holder_path = path.with_name(path.name + ".holder")

    def holder(self) -> dict:
        try:
            return json.loads(self.holder_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def busy_message(self, timeout: float) -> str:
        h = self.holder()
        who = f"pid {h.get('pid', '?')} ({h.get('what', '?')}) since {h.get('since', '?')}"
        return f"{self.what} is locked by {who}; waited {timeout:g} s"

    @contextmanager
    def acquired(self, timeout: float, hint: str, *, on_wait: Callable[[dict], None] | None = None) -> Iterator[None]:
        """Hold the lock; ON_WAIT hears who holds it when the lock is not free at once."""
        from filelock import FileLock, Timeout  # deferred: readers never pay for it

        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.path))
        try:
            lock.acquire(timeout=0 if on_wait else timeout)
        except Timeout:
            if on_wait is None:
                raise AipassError(self.busy_message(timeout), hint) from None
            on_wait(self.holder())
            try:
                lock.acquire(timeout=timeout)
            except Timeout:
                raise AipassError(self.busy_message(timeout), hint) from None
        try:
            try:
                self.holder_path.write_text(
                    json.dumps({"pid": os.getpid(), "what": self.what, "since": clock.utc_now()}), encoding="utf-8")
            except OSError:
                pass  # only a courtesy to whoever waits
            yield
        finally:
            lock.release()


class Gate:
    """One shared/exclusive OS lock per process and path (fcntl.flock), reentrant.

    Single ref writers pass it shared, so they never wait for each other; writers that
    need every single writer out of the way for a moment (a bulk transaction, and the
    recovery of one a crash interrupted) take it exclusive. Within one process a holder
    of the exclusive lock passes a shared request straight through.
    """

    _open: dict[str, list] = {}  # path -> [fd, mode, count]

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._held("shared"):
            yield

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._held("exclusive"):
            yield

    @contextmanager
    def _held(self, mode: str) -> Iterator[None]:

        state = self._open.get(self.path)
        if state is not None and (state[1] == "exclusive" or mode == "shared"):
            state[2] += 1  # already held strongly enough by this process
            try:
                yield
            finally:
                state[2] -= 1
            return
        if state is not None:
            raise AipassError("internal: a shared gate cannot be upgraded to exclusive",
                              "report this with the command that ran, and --debug")
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if mode == "exclusive" else fcntl.LOCK_SH)
            self._open[self.path] = [fd, mode, 1]
            yield
        finally:
            self._open.pop(self.path, None)
            os.close(fd)  # closing the only descriptor releases the lock


def run_git(args: list[str], cwd: Path, *, env: dict[str, str] | None = None, timeout: float = 60.0):
    """`git ARGS` that removes a stale lock it runs into (index.lock, HEAD.lock, ...) and
    tries again; returns the completed process (checked by the caller)."""

    for _ in range(3):
        proc = git.run(args, cwd, env=env, check=False, timeout=timeout)
        lock = locked_path(proc.stderr.decode("utf-8", "replace")) if proc.returncode else None
        if lock is None or not clear_stale(lock):
            return proc
    return proc
