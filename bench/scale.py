"""Scale: a repository of many agents and much mail, and how fast the everyday commands are.

Builds a throw-away demo repository (on tmpfs when /dev/shm exists; isolated HOME and git
config), creates --agents agents in one commit (the API behind `agent new --from`), then
sends --rounds messages to @all (one signed bulk send each, every agent a recipient), and
times, each as a new process the way a user runs it (median of --runs):

  status, thread ID, audit, audit --changed, inbox, agent list, doctor

It prints the packs left after the fill (housekeeping runs by itself in the background),
the same commands again after it finished (each in its own process, AIPASS_NO_WARM set),
and once more as a user runs them, handed to the repository's warm process (cli/warm.py),
which the first command started. The first audit after the fill reads every message once;
it is printed on its own line.

    python bench/scale.py [--agents 1000] [--rounds 100] [--runs 3]

Goals (1,000 agents, 100,000 messages, 2 cores): create 1,000 agents <= 10 s; send @all
>= 5,000 msg/s; status <= 300 ms; thread <= 100 ms; full audit <= 3 s, --changed <= 1 s;
inbox, agent list, doctor <= 300 ms; packs after the fill <= 10 without a manual gc.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import demo_repo, show, warm_process  # noqa: E402

import aipass_git  # noqa: E402


def timed(repo: Path, args: list[str], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(["git", "aipass", *args], cwd=repo, capture_output=True)
        out.append(time.perf_counter() - start)
    return out


def commands(repo: Path, thread_id: str, runs: int, label: str) -> None:
    print(f"-- {label}", flush=True)
    first = timed(repo, ["audit", "--json"], 1)
    if first[0] > 3:  # anything the last audit had not seen yet
        show("audit, the first since the fill", first)
    for name, args in (("status", ["status", "--json"]), ("thread ID", ["thread", thread_id, "--json"]),
                       ("audit", ["audit", "--json"]), ("audit --changed", ["audit", "--changed", "--json"]),
                       ("inbox @devpulse", ["inbox", "@devpulse", "--json"]), ("agent list", ["agent", "list", "--json"]),
                       ("doctor", ["doctor", "--json"])):
        show(name, timed(repo, args, runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    compileall.compile_dir(Path(aipass_git.__file__).parent, quiet=1)
    where = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    with tempfile.TemporaryDirectory(prefix="aipass-bench-scale-", dir=where, ignore_cleanup_errors=True) as tmp_name:
        repo = demo_repo(Path(tmp_name))
        from aipass_git.agents.registry import Registry
        from aipass_git.agents.session import Session
        from aipass_git.core.repo import discover
        from aipass_git.mail.postoffice import PostOffice
        from aipass_git.store import housekeeping

        found = discover(repo)
        start = time.perf_counter()
        Registry(found).create_many([{"name": f"a{i:04d}", "role": f"agent {i}", "provider": "command"}
                                     for i in range(args.agents)])
        took = time.perf_counter() - start
        print(f"create {args.agents} agents (one commit)        {took:8.2f} s   ({took / args.agents * 1000:.1f} ms per agent)",
              flush=True)
        rates = []
        for r in range(args.rounds):
            with PostOffice(Session.of_human(found)) as po:
                start = time.perf_counter()
                sent = po.send(["@all"], f"round {r}", "to everyone")
                rates.append(len(sent) / (time.perf_counter() - start))
        print(f"send @all, {len(sent)} recipients, {args.rounds} rounds   median {statistics.median(rates):8.0f} msg/s   "
              f"slowest {min(rates):8.0f} msg/s", flush=True)
        thread_id = json.loads(subprocess.run(["git", "aipass", "inbox", "@a0000", "--json"], cwd=repo, capture_output=True,
                                              text=True).stdout)["messages"][0]["id"]
        packs, loose = housekeeping.counts(found)
        print(f"after the fill: {packs} packs, about {loose} loose objects", flush=True)
        commands(repo, thread_id, args.runs, "while housekeeping may run")
        deadline = time.monotonic() + 1800
        while housekeeping.overdue(found) is not None and time.monotonic() < deadline:
            time.sleep(1)
        packs, loose = housekeeping.counts(found)
        print(f"after housekeeping by itself: {packs} packs, about {loose} loose objects", flush=True)
        commands(repo, thread_id, args.runs, "after housekeeping")
        with warm_process(repo):
            commands(repo, thread_id, args.runs, "handed to the warm process")


if __name__ == "__main__":
    main()
