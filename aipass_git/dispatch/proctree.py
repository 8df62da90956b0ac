"""The processes of one provider attempt, found and killed as a whole.

An AI CLI starts tool processes in sessions of their own (Claude's Bash tool does), so a
kill of the CLI's process group misses them, and they go on working after their attempt
was given up. Two marks find every one of them:

- the supervisor is a child subreaper (PR_SET_CHILD_SUBREAPER), so a tool process whose
  parent died is re-parented to the supervisor instead of init, and stays its descendant;
- every process of an attempt inherits `AIPASS_RUN=<run id>` in its environment, which
  still names it after the supervisor itself was killed (then nothing is re-parented to
  it, and only the mark is left for whoever recovers the agent).

Linux only (/proc and prctl); elsewhere both searches find nothing beyond the process
group, which is killed too.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time

from aipass_git.core import pids

RUN_ENV = "AIPASS_RUN"
_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_KILL_ROUNDS = 50


def _prctl(option: int, value: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False

    try:
        return ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def become_subreaper() -> bool:
    """Make orphaned descendants of this process its children rather than init's."""
    return _prctl(_PR_SET_CHILD_SUBREAPER, 1)


def die_with_parent() -> None:
    """In a child before exec: the kernel kills it when the supervisor dies."""
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _pids() -> list[int]:
    try:
        return [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return []


def descendants(root: int) -> set[int]:
    """Every live process below ROOT in the process tree."""
    children: dict[int, list[int]] = {}
    for pid in _pids():
        stat = pids.stat(pid)
        if stat and stat[1] != "Z":
            children.setdefault(stat[0], []).append(pid)
    found: set[int] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def marked(run_id: str) -> set[int]:
    """Every live process whose environment carries `AIPASS_RUN=RUN_ID`."""
    needle = f"{RUN_ENV}={run_id}".encode()
    me = os.getpid()
    found = set()
    for pid in _pids():
        if pid == me:
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as fh:
                env = fh.read()
        except OSError:
            continue  # gone, or another user's: not ours to kill
        if needle in env.split(b"\0"):
            stat = pids.stat(pid)
            if stat and stat[1] != "Z":
                found.add(pid)
    return found


def kill_run(run_id: str, *, group: int | None = None, own_tree: bool = False) -> set[int]:
    """SIGKILL every process of the run RUN_ID until none is left; returns those killed.

    GROUP is the provider's process group, killed first; its leader is left for its
    Popen to reap (reaping it here would lose its exit status). OWN_TREE adds every
    descendant of the calling process: only the supervisor passes it, at a moment when
    the attempt's processes are its only children.
    """
    if group:
        _signal_group(group)
    killed: set[int] = set()
    me = os.getpid()
    for _ in range(_KILL_ROUNDS):
        targets = marked(run_id) | (descendants(me) if own_tree else set())
        targets.discard(me)
        if not targets:
            break
        for pid in targets:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                continue
            killed.add(pid)
        _reap(targets - {group})
        time.sleep(0.005)  # let the kernel finish the kills before looking again
    _reap(killed - {group})
    return killed


def _signal_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def reap_orphans() -> None:
    """Collect every exited child. Only for the supervisor, once the provider's own
    Popen has been waited for: orphans that ended by themselves are zombies until then."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _reap(pids: set[int]) -> None:
    """Collect the exit status of those PIDS that are our children (orphans re-parented
    to the subreaper), so no zombie is left behind."""
    for pid in pids:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
