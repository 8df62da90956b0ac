"""Named fault points: deterministic crashes for the crash-safety tests.

`AIPASS_FAULT=<point>[:<n>][:group]` makes the process kill itself with SIGKILL the n-th
time (default: the first) it reaches `point(<point>)`; with `group`, its whole process
group dies, git children included, as when a terminal is closed. Write paths call
`point` between the steps whose interruption matters (after objects are written, with
ref locks held, between a ref and the work tree, ...), so a test can crash exactly
there instead of after a guessed sleep. Unset, a point costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

ENV = "AIPASS_FAULT"
_reached: dict[str, int] = {}


def point(name: str) -> None:
    spec = os.environ.get(ENV)
    if not spec or not spec.startswith(name):
        return
    parts = spec.split(":")
    if parts[0] != name:
        return
    nth = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 1
    _reached[name] = _reached.get(name, 0) + 1
    if _reached[name] != nth:
        return
    if "group" in parts[1:]:
        os.killpg(os.getpgrp(), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)
