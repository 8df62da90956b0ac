"""What every benchmark needs: an isolated git setup, a throw-away demo repository, p95."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from pathlib import Path


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def show(label: str, seconds: list[float], goal: str = "") -> None:
    """One figure line: median and p95 of SECONDS, in ms, with how many runs (and the goal)."""
    ms = [v * 1000 for v in seconds]
    print(f"{label:<52} median {statistics.median(ms):7.1f} ms   p95 {p95(ms):7.1f} ms   (n={len(ms)})"
          + (f"   goal {goal}" if goal else ""), flush=True)


def isolate(tmp: Path) -> dict[str, str]:
    """HOME and git's global config inside TMP, and this installation's git-aipass on PATH."""
    home = tmp / "home"
    home.mkdir(exist_ok=True)
    os.environ.update({"HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull})
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    return dict(os.environ)


def demo_repo(tmp: Path) -> Path:
    """`git aipass demo` in TMP/demo (isolated first): agents api, docs, quality, devpulse."""
    isolate(tmp)
    repo = tmp / "demo"
    subprocess.run(["git", "aipass", "demo", "--dir", str(repo)], check=True, stdout=subprocess.DEVNULL)
    return repo
