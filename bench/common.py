"""What every benchmark needs: an isolated git setup, a throw-away demo repository, p95."""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def show(label: str, seconds: list[float], goal: str = "") -> None:
    """One figure line: median and p95 of SECONDS, in ms, with how many runs (and the goal)."""
    ms = [v * 1000 for v in seconds]
    print(f"{label:<52} median {statistics.median(ms):7.1f} ms   p95 {p95(ms):7.1f} ms   (n={len(ms)})"
          + (f"   goal {goal}" if goal else ""), flush=True)


def isolate(tmp: Path) -> dict[str, str]:
    """HOME and git's global config inside TMP, this installation's git-aipass on PATH, and
    every command in its own process (warm_process() hands them over on purpose)."""
    home = tmp / "home"
    home.mkdir(exist_ok=True)
    os.environ.update({"HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
                       "AIPASS_NO_WARM": "1"})
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    return dict(os.environ)


@contextmanager
def warm_process(repo: Path) -> Iterator[None]:
    """Within: commands are handed to REPO's warm process, which a first command starts
    (core/handoff.py) and which is stopped at the end."""
    from aipass_git.core import handoff

    sock = Path(handoff.socket_in(str(repo / ".git")))
    off = os.environ.pop(handoff.OFF_ENV, None)
    try:
        subprocess.run(["git", "aipass", "status"], cwd=repo, check=True, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while not sock.exists():
            if time.monotonic() > deadline:
                sys.exit("the warm process never listened")
            time.sleep(0.05)
        yield
    finally:
        if off is not None:
            os.environ[handoff.OFF_ENV] = off
        try:
            os.kill(int(Path(handoff.lock_of(str(sock))).read_text()), signal.SIGTERM)
        except (OSError, ValueError):
            pass
        deadline = time.monotonic() + 30
        while sock.exists() and time.monotonic() < deadline:
            time.sleep(0.05)


def demo_repo(tmp: Path) -> Path:
    """`git aipass demo` in TMP/demo (isolated first): agents api, docs, quality, devpulse."""
    isolate(tmp)
    repo = tmp / "demo"
    subprocess.run(["git", "aipass", "demo", "--dir", str(repo)], check=True, stdout=subprocess.DEVNULL)
    return repo
