"""Start-up cost of the command line, as a user pays it.

Runs cold `git aipass agent list`, `inbox`, `status`, `thread ID` and `-h` (a new process
each time, through git) in a throw-away demo repository and prints the median and minimum of
wall time and CPU time (user + system of the whole process tree: git, python, git children;
a command handed to the warm process counts only the asker's), with AIPASS_NO_WARM set.
Then the same as a user runs them, handed to the repository's warm process (cli/warm.py),
which the first command started.

    python bench/startup.py [--runs 20]

Goals: `agent list` at most 200 ms CPU on a 2-core machine (issue 2); `thread` within 100 ms
(issue 18).
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import demo_repo, p95, warm_process  # noqa: E402


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()

    # an installed package has its bytecode; a checkout run with PYTHONDONTWRITEBYTECODE
    # would compile every module on every start and measure that instead
    import aipass_git

    compileall.compile_dir(Path(aipass_git.__file__).parent, quiet=1)
    with tempfile.TemporaryDirectory(prefix="aipass-bench-") as tmp:
        repo = demo_repo(Path(tmp))
        env = dict(os.environ)
        inbox = subprocess.run(["git", "aipass", "inbox", "--json"], cwd=repo, capture_output=True, text=True)
        thread = json.loads(inbox.stdout)["messages"][0]["id"]
        commands = (["git", "aipass", "agent", "list"], ["git", "aipass", "inbox"], ["git", "aipass", "status"],
                    ["git", "aipass", "thread", thread], ["git", "aipass", "-h"])
        table(commands, repo, env, args.runs, "each command in a new process")
        with warm_process(repo):
            table(commands, repo, dict(os.environ), args.runs, "handed to the warm process")
        print(f"({args.runs} runs each, {os.cpu_count()} cores, python {sys.version.split()[0]})")


def table(commands: tuple[list[str], ...], repo: Path, env: dict[str, str], runs: int, label: str) -> None:
    print(f"-- {label}")
    print(f"{'command':<28}{'wall median':>12}{'wall min':>10}{'wall p95':>10}{'cpu median':>12}{'cpu min':>9}   ops/s")
    for argv in commands:
        measure(argv, repo, env, 2)  # warm the page cache: "cold" means a new process, not a cold disk
        walls, cpus = measure(argv, repo, env, runs)
        median_wall = statistics.median(walls)
        name = " ".join(argv[:3]) + (" ID" if argv[2] == "thread" else " " + " ".join(argv[3:]))
        print(
            f"{name.strip():<28}{median_wall:>10.1f}ms{min(walls):>8.1f}ms{p95(walls):>8.1f}ms"
            f"{statistics.median(cpus):>10.1f}ms{min(cpus):>7.1f}ms{1000 / median_wall:>8.1f}"
        )


if __name__ == "__main__":
    main()
