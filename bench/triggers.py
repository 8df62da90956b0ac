"""Triggers: how soon a rule's action starts after its event, with the daemon and without
it, and what an idle daemon costs.

Builds a throw-away demo repository (isolated HOME and git config) with one rule: mail
delivered to @quality runs a one-line program that notes when it started. Each run sends
one message (`git aipass send`, a new process, as a user does) and measures from the
moment the delivery landed on its ref (the loose ref's mtime) to the program's start:

1. with `git aipass daemon run` (default poll 0.5 s);
2. without a daemon: `send` kicks a sweep in the background itself.

Then 100 agents are added and the daemon left idle for --idle seconds (one 30 s tick
included): its CPU share of one core and its resident memory.

    python bench/triggers.py [--runs N] [--idle SECONDS]

Goals (from the triggers issue): event -> action started <= 1 s with the daemon, and no
more than the hook's own time (a process start and a sweep) without; an idle daemon
with 100 agents <= 1 % of one core and <= 60 MiB.
"""

from __future__ import annotations

import argparse
import compileall
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import demo_repo, show  # noqa: E402

import aipass_git  # noqa: E402


def aipass(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "aipass", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


def latencies(repo: Path, started: Path, runs: int) -> list[float]:
    ref = repo / ".git/refs/aipass/mail/quality"  # a loose ref: its mtime is when the delivery landed
    out = []
    for i in range(runs):
        before = len(started.read_text().split()) if started.exists() else 0
        aipass(repo, "send", "@quality", f"note {i}", "for the bench")
        sent = ref.stat().st_mtime_ns / 1e9
        deadline = time.monotonic() + 30
        while (len(started.read_text().split()) if started.exists() else 0) <= before:
            if time.monotonic() > deadline:
                raise SystemExit("the rule never fired; see: git aipass log")
            time.sleep(0.005)
        out.append(float(started.read_text().split()[-1]) - sent)
        time.sleep(0.3)  # let the sweep that fired finish before the next event
    return out


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--idle", type=float, default=60.0)
    args = parser.parse_args()
    compileall.compile_dir(Path(aipass_git.__file__).parent, quiet=1)
    with tempfile.TemporaryDirectory(prefix="aipass-bench-triggers-", ignore_cleanup_errors=True) as tmp_name:
        tmp = Path(tmp_name)
        repo = demo_repo(tmp)
        started = tmp / "started.txt"
        (repo / ".aipass/triggers.yaml").write_text(
            "rules:\n  - name: note\n    on: mail.delivered\n    when: {agent: \"@quality\"}\n"
            f"    limit: {{firings: 100000, per_seconds: 60}}\n    breaker: {{trips_after: 100000, within_seconds: 60}}\n"
            f"    do:\n      - run: [sh, -c, \"date +%s.%N >> {started}\"]\n")
        daemon = subprocess.Popen(["git", "aipass", "daemon", "run"], cwd=repo, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        try:
            time.sleep(2)  # its first sweep sets the start
            show("event -> action started, with the daemon", latencies(repo, started, args.runs))
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait()
        show("event -> action started, without a daemon", latencies(repo, started, args.runs))
        from aipass_git.agents.registry import Registry
        from aipass_git.core.repo import discover

        registry = Registry(discover(repo))
        for i in range(100):
            registry.create(f"idle{i:03d}", role="waits", provider="command")
        daemon = subprocess.Popen(["git", "aipass", "daemon", "run"], cwd=repo, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        try:
            time.sleep(3)
            pid = int(subprocess.run(["pgrep", "-f", "-n", "aipass_git daemon run|git-aipass daemon run"],
                                     capture_output=True, text=True).stdout.split()[0])
            cpu0, t0 = proc_cpu_seconds(pid), time.monotonic()
            time.sleep(args.idle)
            share = (proc_cpu_seconds(pid) - cpu0) / (time.monotonic() - t0) * 100
            print(f"idle daemon, 100 agents, {args.idle:.0f} s: {share:.2f} % of one core, {proc_rss_mib(pid):.1f} MiB resident")
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait()


if __name__ == "__main__":
    main()
