"""Start-up cost of the command line, as a user pays it.

Runs cold `git aipass agent list`, `inbox`, `status` and `-h` (a new process each time, through
git) in a throw-away demo repository and prints the median and minimum of wall time and
CPU time (user + system of the whole process tree: git, python, git children).

    python bench/startup.py [--runs 20]

Goal (issue 2): `agent list` at most 200 ms CPU on a 2-core machine.
"""

from __future__ import annotations

import argparse
import compileall
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def measure(argv: list[str], cwd: Path, env: dict[str, str], runs: int) -> tuple[list[float], list[float]]:
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        proc = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode != 0:
            sys.exit(f"{' '.join(argv)} failed: {proc.stderr.decode()}")
        walls.append(wall * 1000)
        cpus.append((after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000)
    return walls, cpus


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()

    bin_dir = Path(sys.executable).parent
    # an installed package has its bytecode; a checkout run with PYTHONDONTWRITEBYTECODE
    # would compile every module on every start and measure that instead
    import aipass_git

    compileall.compile_dir(Path(aipass_git.__file__).parent, quiet=1)
    with tempfile.TemporaryDirectory(prefix="aipass-bench-") as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        env = {
            **os.environ,
            "HOME": str(home),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        repo = Path(tmp) / "demo"
        subprocess.run(["git", "aipass", "demo", "--dir", str(repo)], env=env, check=True, stdout=subprocess.DEVNULL)
        print(f"{'command':<28}{'wall median':>12}{'wall min':>10}{'wall p95':>10}{'cpu median':>12}{'cpu min':>9}   ops/s")
        commands = (["git", "aipass", "agent", "list"], ["git", "aipass", "inbox"], ["git", "aipass", "status"],
                    ["git", "aipass", "-h"])
        for argv in commands:
            measure(argv, repo, env, 2)  # warm the page cache: "cold" means a new process, not a cold disk
            walls, cpus = measure(argv, repo, env, args.runs)
            median_wall = statistics.median(walls)
            print(
                f"{' '.join(argv):<28}{median_wall:>10.1f}ms{min(walls):>8.1f}ms{p95(walls):>8.1f}ms"
                f"{statistics.median(cpus):>10.1f}ms{min(cpus):>7.1f}ms{1000 / median_wall:>8.1f}"
            )
        print(f"({args.runs} runs each, {os.cpu_count()} cores, python {sys.version.split()[0]})")


if __name__ == "__main__":
    main()
