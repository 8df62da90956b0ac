"""Dispatch figures: how fast a woken agent starts, how 30 agents start at once, and what
a supervisor costs in memory.

    python bench/dispatch.py [--runs 20]

Measured in a throw-away demo repository whose agents run a one-line shell provider that
writes the time it started, so the figures are aipass-git's own overhead, not a model's.
Goals (issue 4): <= 300 ms from `dispatch` returning to the provider starting; 30 agents
all running in under 10 s on a 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import demo_repo, p95


def setup(tmp: Path, agents: int) -> Path:
    repo = demo_repo(tmp)
    starts = tmp / "starts.txt"
    config = repo / ".aipass/config.yaml"
    text = config.read_text()
    start = text.index("    argv: [python3, -m, aipass_git.dispatch.local_agent")
    end = text.index("\n", start)
    # the provider records when it started, then stays up a moment so it can be observed
    argv = f'    argv: [sh, -c, "echo $AIPASS_DISPATCH $(date +%s.%N) >> {starts}; sleep 1"]'
    config.write_text(text[:start] + argv + text[end:])
    subprocess.run(["git", "commit", "-qam", "bench provider"], cwd=repo, check=True)
    from aipass_git.agents.registry import Registry
    from aipass_git.core.repo import discover

    registry = Registry(discover(repo))
    for i in range(agents):
        registry.create(f"b{i:02d}", role="bench agent", provider="command")
    return repo


def read_starts(path: Path) -> dict[str, float]:
    if not path.exists():
        return {}
    return {line.split()[0]: float(line.split()[1]) for line in path.read_text().splitlines() if line.strip()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    from aipass_git.core.repo import discover
    from aipass_git.dispatch import dispatcher
    from aipass_git.dispatch.runtime import Runtime

    with tempfile.TemporaryDirectory(prefix="aipass-bench-") as tmp_name:
        tmp = Path(tmp_name)
        repo_path = setup(tmp, 30)
        repo = discover(repo_path)
        starts_path = tmp / "starts.txt"

        # 1. one agent at a time: dispatch returns -> provider starts
        latencies, dispatch_calls = [], []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            sent = dispatcher.dispatch(repo, "api", "bench", "one wake")
            returned = time.time()
            dispatch_calls.append((time.perf_counter() - t0) * 1000)
            dispatcher.wait(repo, sent.message["id"], timeout=60, poll=0.02)
            latencies.append((read_starts(starts_path)[sent.message["id"]] - returned) * 1000)
        print(f"dispatch call (deliver + spawn supervisor): median {statistics.median(dispatch_calls):.1f} ms, p95 {p95(dispatch_calls):.1f} ms")
        print(f"dispatch returned -> provider started:      median {statistics.median(latencies):.1f} ms, p95 {p95(latencies):.1f} ms  ({args.runs} runs)")

        # 2. thirty agents at once
        names = [f"b{i:02d}" for i in range(30)]
        t0 = time.time()
        sent = [dispatcher.dispatch(repo, n, "bench", "all at once") for n in names]
        issued = time.time()
        rss = []
        runtime = Runtime(repo)
        seen: set[str] = set()
        while len(seen) < 30 and time.time() - t0 < 120:
            for name in names:
                state = runtime.read_state(name)
                if name not in seen and state.get("state") == "running":
                    seen.add(name)
                    try:
                        status = Path(f"/proc/{state['pid']}/status").read_text()
                        rss.append(int(next(l for l in status.splitlines() if l.startswith("VmRSS")).split()[1]) / 1024)
                    except (FileNotFoundError, StopIteration, KeyError):
                        pass
            time.sleep(0.02)
        for s in sent:
            dispatcher.wait(repo, s.message["id"], timeout=120, poll=0.05)
        starts = read_starts(starts_path)
        last_start = max(starts[s.message["id"]] for s in sent)
        print(f"30 dispatches issued in {issued - t0:.2f} s; all 30 providers running after {last_start - t0:.2f} s")
        if rss:
            print(f"supervisor resident memory per agent: median {statistics.median(rss):.1f} MiB, max {max(rss):.1f} MiB")
        print(f"({os.cpu_count()} cores, python {sys.version.split()[0]})")


if __name__ == "__main__":
    main()
