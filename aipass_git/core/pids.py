"""Is a process still there? Asked of pids that name the owners of locks, journal
records, temporary files and sessions, where a wrong "yes" would leave them stuck.

A zombie (dead, not yet reaped by its parent) counts as gone; so does a pid that a new
process took over, when its start time is known.
"""

from __future__ import annotations

import os


def stat(pid: int) -> tuple[int, str, int] | None:
    """(parent pid, state letter, start time in clock ticks) of PID from /proc, or None
    when it is gone (or there is no /proc)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    # the command name may hold spaces and parentheses: the fields start after the last ')'
    fields = data[data.rfind(b")") + 2:].split()
    try:
        return int(fields[1]), fields[0].decode(), int(fields[19])
    except (IndexError, ValueError):
        return None


def alive(pid: int, started: int | None = None) -> bool:
    """Whether PID runs (not a zombie) and, given STARTED, is still the same process."""
    found = stat(pid)
    if found is not None:
        return found[1] != "Z" and (started is None or found[2] == started)
    if os.path.isdir("/proc/self"):
        return False  # /proc works, and has no such process
    try:  # elsewhere: signal 0 says whether the pid exists at all
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def start_time(pid: int) -> int | None:
    """PID's start time (clock ticks since boot): with the pid, it names one process."""
    found = stat(pid)
    return found[2] if found else None
