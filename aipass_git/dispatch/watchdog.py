"""Run one provider start and watch it: start-up timeout, run timeout, outcome.

The outcome comes from the exit code and the provider's structured output (a JSON result
with `is_error`), never from reading a terminal screen.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

RATE_LIMIT = re.compile(r"rate[ _-]?limit|too many requests|\b429\b|quota exceeded|overloaded", re.IGNORECASE)
POLL_SECONDS = 0.05


@dataclass
class Attempt:
    ok: bool
    reason: str  # ok | exit | startup-timeout | run-timeout | missing-binary | error-result
    exit_code: int | None
    rate_limited: bool
    stderr_tail: str
    duration: float


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
    startup_seconds: float,
    run_seconds: float,
    progress: Callable[[], object] | None = None,
    on_start: Callable[[int], None] | None = None,
) -> Attempt:
    run_dir.mkdir(parents=True, exist_ok=True)
    out_path, err_path = run_dir / "stdout.log", run_dir / "stderr.log"
    started = time.monotonic()
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        try:
            proc = subprocess.Popen(
                argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                start_new_session=True,  # its own process group: a timeout kills all it started
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            )
        except (FileNotFoundError, PermissionError) as exc:
            return Attempt(False, "missing-binary", None, False, f"{argv[0]}: {exc.strerror}", 0.0)
    if on_start:
        on_start(proc.pid)
    first_sign = progress() if progress else None
    alive_seen = False
    reason = "exit"
    while True:
        code = proc.poll()
        if code is not None:
            break
        elapsed = time.monotonic() - started
        if not alive_seen:
            alive_seen = _size(out_path) + _size(err_path) > 0 or (progress is not None and progress() != first_sign)
            if not alive_seen and elapsed > startup_seconds:
                reason = "startup-timeout"
                _kill(proc)
                break
        if elapsed > run_seconds:
            reason = "run-timeout"
            _kill(proc)
            break
        time.sleep(POLL_SECONDS)
    code = proc.wait()
    duration = time.monotonic() - started
    stderr_tail = tail(err_path)
    stdout_tail = tail(out_path, lines=5)
    rate_limited = bool(RATE_LIMIT.search(stderr_tail) or RATE_LIMIT.search(stdout_tail))
    if reason != "exit":
        return Attempt(False, reason, code, rate_limited, stderr_tail, duration)
    if code == 0 and _reports_error(out_path):
        return Attempt(False, "error-result", code, rate_limited, stderr_tail or stdout_tail, duration)
    return Attempt(code == 0, "ok" if code == 0 else "exit", code, rate_limited and code != 0, stderr_tail, duration)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _reports_error(out_path: Path) -> bool:
    """Whether the provider's final JSON result says it failed (claude/gemini `is_error`)."""
    last = tail(out_path, lines=1).strip()
    if not last.startswith("{"):
        return False
    try:
        result = json.loads(last)
    except json.JSONDecodeError:
        return False
    return isinstance(result, dict) and result.get("is_error") is True


def _die_with_parent() -> None:
    # PR_SET_PDEATHSIG: if the supervisor is killed, the kernel kills the provider too,
    # so a crashed supervisor never leaves a second session running.
    import ctypes

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)
    except OSError:
        pass
