"""Dispatch figures: how fast a woken agent starts, how fast its sender hears back, how a
crashed supervisor and a cancel are dealt with, how 30 agents start at once, and what a
supervisor costs in memory.

    python bench/dispatch.py [--runs 20]

Measured in a throw-away demo repository whose agents run one-line shell providers that
write the times they start and end, so the figures are aipass-git's own overhead, not a
model's. Goals: <= 300 ms from `dispatch` returning to the provider starting; <= 1 s
from the end of a run to the sender being answered; <= 10 s from a supervisor killed
with -9 to its queue running again; <= 2 s from `cancel` to the run's whole process tree
(a tool in its own session included) being gone; 30 agents all running in under 10 s on
a 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import demo_repo, p95


def setup(tmp: Path, agents: int) -> Path:
    repo = demo_repo(tmp)
    starts, ends = tmp / "starts.txt", tmp / "ends.txt"
    config = repo / ".aipass/config.yaml"
    text = config.read_text()
    start = text.index("    argv: [python3, -m, aipass_git.dispatch.local_agent")
    end = text.index("\n", start)
    # the provider records when it started, then stays up a moment so it can be observed
    argv = f'    argv: [sh, -c, "echo $AIPASS_DISPATCH $(date +%s.%N) >> {starts}; sleep 1"]'
    record = "echo $AIPASS_DISPATCH $(date +%s.%N)"
    extra = (
        f'\n  quick:\n    argv: [sh, -c, "{record} >> {ends}"]'
        # a tool in a session of its own (as Claude's Bash tool runs), then a long session
        f'\n  sleeper:\n    argv: [sh, -c, "{record} >> {starts}; echo working; setsid sleep 3600 & exec sleep 3600"]'
    )
    text = text[:start] + argv + text[end:]
    marker = "\n  command:\n"
    text = text.replace(marker, extra + marker, 1).replace("crash_retries: 1", "crash_retries: 0")
    config.write_text(text)
    subprocess.run(["git", "commit", "-qam", "bench provider"], cwd=repo, check=True)
    from aipass_git.agents.registry import Registry
    from aipass_git.core.repo import discover

    registry = Registry(discover(repo))
    for i in range(agents):
        registry.create(f"b{i:02d}", role="bench agent", provider="command")
    registry.create("fast", role="answers at once", provider="quick")
    registry.create("slow", role="works for an hour", provider="sleeper")
    return repo


def finished_at(runtime, dispatch_id: str, deadline: float = 60.0) -> float:
    """Wall time at which the "finished" event of DISPATCH_ID was seen (polled every 2 ms)."""
    offset, t0 = 0, time.time()
    while time.time() - t0 < deadline:
        events, offset = runtime.events_since(offset)
        if any(e.get("event") == "finished" and e.get("dispatch") == dispatch_id for e in events):
            return time.time()
        time.sleep(0.002)
    raise SystemExit(f"dispatch {dispatch_id} did not finish")


def running_state(runtime, agent: str, dispatch_id: str) -> dict:
    t0 = time.time()
    while time.time() - t0 < 60:
        state = runtime.read_state(agent)
        if state.get("state") == "running" and state.get("dispatch") == dispatch_id:
            return state
        time.sleep(0.005)
    raise SystemExit(f"@{agent} never ran {dispatch_id}")


def bench_answer(repo, runs: int, ends_path: Path) -> list[float]:
    """End of the provider's run -> the sender answered (the notice is sent before the
    "finished" event is logged, so this bounds the notice's delay from above)."""
    from aipass_git.dispatch import dispatcher
    from aipass_git.dispatch.runtime import Runtime

    out = []
    for _ in range(runs):
        sent = dispatcher.dispatch(repo, "fast", "bench", "answer me")
        seen = finished_at(Runtime(repo), sent.message["id"])
        ended = read_starts(ends_path)[sent.message["id"]]
        out.append((seen - ended) * 1000)
    return out


def bench_crash(repo, runs: int, starts_path: Path) -> list[float]:
    """kill -9 of a busy supervisor -> the next queued dispatch's provider starts, when
    the next command touching the agent is `git aipass status`."""
    from aipass_git.dispatch import dispatcher
    from aipass_git.dispatch.cancel import cancel
    from aipass_git.dispatch.runtime import Runtime

    runtime, out = Runtime(repo), []
    for _ in range(runs):
        first = dispatcher.dispatch(repo, "slow", "bench", "crash me")
        state = running_state(runtime, "slow", first.message["id"])
        second = dispatcher.dispatch(repo, "slow", "bench", "queued behind it")
        os.kill(state["pid"], signal.SIGKILL)
        killed = time.time()
        subprocess.run(["git", "aipass", "status"], cwd=repo.root, check=True, stdout=subprocess.DEVNULL)
        running_state(runtime, "slow", second.message["id"])
        out.append((read_starts(starts_path)[second.message["id"]] - killed) * 1000)
        cancel(repo, "slow", second.message["id"])
    return out


def bench_cancel(repo, runs: int) -> list[float]:
    """`cancel` called -> every process of the run (its own-session tool too) gone."""
    from aipass_git.dispatch import dispatcher, proctree
    from aipass_git.dispatch.cancel import cancel
    from aipass_git.dispatch.runtime import Runtime

    runtime, out = Runtime(repo), []
    for _ in range(runs):
        sent = dispatcher.dispatch(repo, "slow", "bench", "cancel me")
        state = running_state(runtime, "slow", sent.message["id"])
        while len(proctree.marked(state["run"])) < 2:  # the session's sleep and the tool's
            time.sleep(0.005)
        t0 = time.perf_counter()
        cancel(repo, "slow")
        while proctree.marked(state["run"]):
            time.sleep(0.001)
        out.append((time.perf_counter() - t0) * 1000)
    return out


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

    with tempfile.TemporaryDirectory(prefix="aipass-bench-", ignore_cleanup_errors=True) as tmp_name:
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
        figures = [
            ("end of run -> sender answered:             ", bench_answer(repo, args.runs, tmp / "ends.txt")),
            ("kill -9 supervisor -> queue runs (status): ", bench_crash(repo, max(3, args.runs // 4), starts_path)),
            ("cancel -> whole process tree gone:         ", bench_cancel(repo, max(3, args.runs // 4))),
        ]
        for label, values in figures:
            print(f"{label}median {statistics.median(values):.1f} ms, p95 {p95(values):.1f} ms  ({len(values)} runs)")

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
