"""Mail on refs under load: send latency, concurrent writers, bulk delivery, inbox listing.

Builds a throw-away demo repository (isolated HOME and git config) and prints, for each
figure, the median (p50) and 95th percentile of wall time and the rate in messages/s:

1. API send: one writer, one `PostOffice`, many `send(["@api"], ...)` in a row.
2. CLI send: `git aipass send @api SUBJECT BODY`, a new process each time.
3. Concurrent writers: 1, 8 and 30 processes, each with its own `PostOffice`, all sending
   to the same mailbox at once; total messages/s, per-message latency (lock wait
   included), and a count of the mailbox afterwards ("lost" must read 0).
4. Bulk delivery: `send @all` to 100 agents (one fast-import batch), and an API batch of
   10,000 messages to one mailbox through `EventStore.append_many`.
5. Inbox listing of 100, 1,000 and 10,000 messages: the API with a fresh `PostOffice`
   each time (cold caches and a new `git cat-file`), and `git aipass inbox @x --json`.
   Every message's signature is checked (the demo repository signs, `trust: signed`):
   the listings reuse the verdicts cached by commit id; a row of its own shows the first
   look, with that cache emptied (every signature checked).

    python bench/mail.py [--quick]

`--quick` makes every count about 10x smaller, for a smoke run. A full run takes about a
minute on a 2-core machine.

Goals (from the mail-on-refs issue): API send p50 <= 3 ms and >= 300 msg/s with one
writer; no message lost with 30 concurrent writers; bulk delivery >= 5,000 msg/s; 10,000
messages listed in <= 100 ms. From the trust issue: the same send p50 <= 3 ms with every
commit signed, and 10,000 messages listed with verification (cached by commit id) in
<= 150 ms.

A send writes six loose objects, so the figures follow the file system: on ext4 without a
journal, for minutes after many files were deleted nearby (a previous run's clean-up, a
test suite's temporary folders), creating a file is several times slower (the kernel
skips recently freed inodes). Leave a few minutes between runs; TMPDIR chooses where the
throw-away repository goes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# One process of the concurrency test: open a PostOffice, say "ready", wait for "go" on
# stdin, send N messages to one mailbox, print the latencies and ids as one JSON line.
WRITER = r"""
import json, sys, time
from aipass_git.core.repo import discover
from aipass_git.mail.postoffice import PostOffice

root, to, n, tag = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
with PostOffice(discover(root)) as po:
    po.store.tip("HEAD")  # start git cat-file before the clock runs
    print("ready", flush=True)
    sys.stdin.readline()
    lat, ids = [], []
    start = time.monotonic()
    for i in range(n):
        t0 = time.perf_counter()
        [m] = po.send([to], f"load {tag} {i}", "a message sent under load\n")
        lat.append(time.perf_counter() - t0)
        ids.append(m["id"])
    end = time.monotonic()
print(json.dumps({"start": start, "end": end, "lat": lat, "ids": ids}), flush=True)
"""


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def row(name: str, times_s: list[float] | None, rate: float | None, note: str = "") -> None:
    """One line of the table: p50 and p95 in ms (of TIMES_S, in seconds) and a rate."""
    p50 = f"{statistics.median(times_s) * 1000:>9.2f}ms" if times_s else f"{'':>11}"
    p95_ = f"{p95(times_s) * 1000:>9.2f}ms" if times_s and len(times_s) > 1 else f"{'':>11}"
    ops = f"{rate:>10,.0f}" if rate is not None else f"{'':>10}"
    print(f"{name:<44}{p50}{p95_}{ops}   {note}".rstrip(), flush=True)


def goal(met: bool, text: str) -> str:
    return f"goal {text}: {'ok' if met else 'MISSED'}"


def run_cli(argv: list[str], cwd: Path, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.run(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        times.append(time.perf_counter() - start)
        if proc.returncode != 0:
            sys.exit(f"{' '.join(argv)} failed: {proc.stderr.decode()}")
    return times


def post_office(root: Path):
    from aipass_git.core.repo import discover
    from aipass_git.mail.postoffice import PostOffice

    return PostOffice(discover(root))


def create_agents(root: Path, names: list[str]) -> None:
    """Set-up, not measured: every agent's files in one commit (Registry.prepare + commit)."""
    from aipass_git.agents.registry import Registry
    from aipass_git.core import config as config_mod
    from aipass_git.core.repo import discover
    from aipass_git.store.worktree_commit import commit_files

    repo = discover(root)
    registry, config = Registry(repo), config_mod.load(repo)
    contents: dict[str, bytes] = {}
    for name in names:
        _, files = registry.prepare(name, role=f"bench mailbox {name}", provider="command", config=config)
        contents.update(files)
    commit_files(repo, contents, f"bench: add {len(names)} agents\n")


def fill(root: Path, owner: str, count: int, chunk: int = 10_000) -> float:
    """Deliver COUNT messages to OWNER through append_many; returns the seconds it took."""
    from aipass_git.mail import mailbox, message as msg

    elapsed = 0.0
    with post_office(root) as po:
        for first in range(0, count, chunk):
            start = time.perf_counter()
            batch = []
            for i in range(first, min(count, first + chunk)):
                m = msg.build(sender="human", recipient=owner, subject=f"bulk {i}", body=f"bulk message {i}\n")
                batch.append((mailbox.ref_for(owner), mailbox.deliver(m, po.speaker.author)))
            po.store.append_many(batch)
            elapsed += time.perf_counter() - start
    return elapsed


def count_mailbox(root: Path, owner: str) -> tuple[set[str], int]:
    """Ids in OWNER's mailbox, and the number of commits on its ref."""
    with post_office(root) as po:
        ids = {line["id"] for line in po.inbox(owner, include_done=True)}
    commits = subprocess.run(
        ["git", "rev-list", "--count", f"refs/aipass/mail/{owner}"], cwd=root, capture_output=True, text=True
    ).stdout.strip()
    return ids, int(commits or 0)


# -- the figures ------------------------------------------------------------------------


def api_send(root: Path, sends: int) -> None:
    with post_office(root) as po:
        for i in range(5):
            po.send(["@api"], f"warm-up {i}", "warm-up")
        times = []
        start = time.perf_counter()
        for i in range(sends):
            t0 = time.perf_counter()
            po.send(["@api"], f"api send {i}", "a message from the benchmark\n")
            times.append(time.perf_counter() - t0)
        total = time.perf_counter() - start
    rate = sends / total
    row(f"API send @api ({sends:,}, one PostOffice, signed)", times, rate,
        goal(statistics.median(times) <= 0.003 and rate >= 300, "p50 <= 3 ms, >= 300 msg/s"))


def cli_send(root: Path, runs: int) -> None:
    argv = ["git", "aipass", "send", "@api", "cli subject", "a message from the command line"]
    run_cli(argv, root, 2)  # warm the page cache
    times = run_cli(argv, root, runs)
    row(f"CLI send @api ({runs} runs)", times, 1 / statistics.median(times))


def writers(root: Path, procs: int, each: int) -> None:
    owner = f"load{procs}"
    env = {**os.environ}
    children = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(root), f"@{owner}", str(each), str(k)],
            cwd=root, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for k in range(procs)
    ]
    for child in children:
        if child.stdout.readline().strip() != "ready":
            for other in children:
                other.kill()  # else they would start sending when our end of their stdin closes
            child.wait()
            sys.exit(f"writer failed to start: {child.stderr.read()}")
    for child in children:
        child.stdin.write("go\n")
        child.stdin.flush()
    reports, failures = [], 0
    for child in children:
        out, err = child.communicate()
        if child.returncode != 0:
            failures += 1
            print(f"  writer {child.pid} failed: {err.strip().splitlines()[-1:] or child.returncode}")
            continue
        reports.append(json.loads(out.strip().splitlines()[-1]))
    lat = [t for r in reports for t in r["lat"]]
    sent = {i for r in reports for i in r["ids"]}
    wall = max(r["end"] for r in reports) - min(r["start"] for r in reports) if reports else 0.0
    expected = procs * each
    present, commits = count_mailbox(root, owner)
    lost = len(sent - present)  # a writer was told "sent", the mailbox does not have it
    note = f"in box {len(present):,}/{expected:,}, commits {commits:,}, lost: {lost}"
    if len(present - sent):
        note += f", unexpected: {len(present - sent)}"
    if failures:
        note += f", {failures} writers failed ({expected - len(sent)} messages not sent)"
    row(f"{procs:>2} writer{'s' if procs > 1 else ' '} x {each} -> @{owner} ({expected:,})", lat, len(sent) / wall if wall else None, note)


def bulk_all(root: Path, agents: int, runs: int) -> None:
    with post_office(root) as po:
        present = len(po.recipients(["@all"]))
    if present < agents:
        create_agents(root, [f"crew{i:03d}" for i in range(agents - present)])
    with post_office(root) as po:
        recipients = len(po.recipients(["@all"]))
        po.send(["@all"], "warm-up", "warm-up")
        times = []
        for i in range(runs):
            t0 = time.perf_counter()
            sent = po.send(["@all"], f"all hands {i}", "a message to everyone\n")
            times.append(time.perf_counter() - t0)
            if len(sent) != recipients:
                print(f"  send @all reached {len(sent)} agents, expected {recipients}")
    rate = recipients / statistics.median(times)
    row(f"API send @all ({recipients} agents, {runs} runs)", times, rate, goal(rate >= 5000, ">= 5,000 msg/s"))
    argv = ["git", "aipass", "send", "@all", "cli all hands", "a message to everyone"]
    cli_times = run_cli(argv, root, max(2, runs // 2))
    cli_rate = recipients / statistics.median(cli_times)
    row(f"CLI send @all ({recipients} agents, {len(cli_times)} runs)", cli_times, cli_rate)


def bulk_batch(root: Path, owner: str, count: int) -> None:
    elapsed = fill(root, owner, count)
    rate = count / elapsed
    row(f"API append_many to @{owner} ({count:,})", [elapsed], rate, goal(rate >= 5000, ">= 5,000 msg/s"))


def listing(root: Path, owner: str, count: int, runs: int, cli_runs: int) -> None:
    from aipass_git.core.repo import discover
    from aipass_git.mail.postoffice import PostOffice

    api, opened = [], []
    for _ in range(runs + 1):
        t0 = time.perf_counter()
        with PostOffice(discover(root)) as po:  # fresh: no cached trees, a new git cat-file
            t1 = time.perf_counter()
            lines = po.inbox(f"@{owner}", include_done=True)
            t2 = time.perf_counter()
        api.append(t2 - t1)
        opened.append(t2 - t0)
        if len(lines) != count:
            print(f"  @{owner} lists {len(lines):,} messages, expected {count:,}")
    api, opened = api[1:], opened[1:]  # the first run warms the page cache
    ok = statistics.median(api) <= 0.1 if count >= 10_000 else None
    row(f"API inbox @{owner} ({count:,})", api, count / statistics.median(api),
        goal(ok, "10,000 in <= 100 ms") if ok is not None else "")
    row("  the same, with discover + PostOffice()", opened, count / statistics.median(opened))
    if count >= 10_000:
        shutil.rmtree(discover(root).runtime_dir / "trust", ignore_errors=True)  # every signature checked again
        with PostOffice(discover(root)) as po:
            t0 = time.perf_counter()
            po.inbox(f"@{owner}", include_done=True)
            first = time.perf_counter() - t0
        row("  the first look, no verdicts cached", [first], count / first)
        create_agents(root, [f"joiner{count}"])  # the allowed signers change: each mailbox is judged again
        with PostOffice(discover(root)) as po:
            t0 = time.perf_counter()
            po.inbox(f"@{owner}", include_done=True)
            joined = time.perf_counter() - t0
        row("  the first look after an agent joined", [joined], count / joined)
    argv = ["git", "aipass", "inbox", f"@{owner}", "--all", "--json"]
    run_cli(argv, root, 1)
    cli = run_cli(argv, root, cli_runs)
    row(f"CLI inbox @{owner} --all --json ({count:,})", cli, count / statistics.median(cli))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="every count about 10x smaller (a smoke run)")
    parser.add_argument("--dir", default=None, help="where the throw-away repository goes (default: the system's "
                        "temporary folder); /dev/shm (tmpfs) shows the code's cost without the disk's: a send "
                        "writes six loose objects and a ref")
    args = parser.parse_args()
    q = 10 if args.quick else 1

    bin_dir = Path(sys.executable).parent
    began, load = time.perf_counter(), os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="aipass-bench-", dir=args.dir) as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        # The library runs git itself, so this process's own environment is the isolated one.
        os.environ.update({
            "HOME": str(home),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            "AIPASS_NO_WARM": "1",  # the CLI rows: a new process each, as they say
        })
        os.environ.pop("AIPASS_AGENT", None)  # send as the human, whatever the caller's shell says
        root = Path(tmp) / "demo"
        subprocess.run(["git", "aipass", "demo", "--dir", str(root)], check=True, stdout=subprocess.DEVNULL)
        sizes = [100 // q, 1000 // q, 10_000 // q]
        writer_sets = [(1, 500 // q), (8, 100 // q), (30, 50 // q)]
        create_agents(root, [f"load{p}" for p, _ in writer_sets])

        print(f"{'figure':<44}{'p50':>11}{'p95':>11}{'msg/s':>10}")
        print("-- 1. one writer, API")
        api_send(root, 1000 // q)
        print("-- 2. one writer, CLI (a new process per send)")
        cli_send(root, max(5, 30 // q))
        print("-- 3. concurrent writer processes, one mailbox (latency includes waiting for the lock)")
        for procs, each in writer_sets:
            writers(root, procs, each)
        print("-- 4. bulk delivery (one fast-import batch; p50 and p95 are per batch)")
        bulk_all(root, 100 // q, max(3, 10 // q))
        create_agents(root, [f"box{n}" for n in sizes])  # after @all, so they hold round numbers
        bulk_batch(root, f"box{sizes[-1]}", sizes[-1])
        for n in sizes[:-1]:
            fill(root, f"box{n}", n)
        print("-- 5. inbox listing, cold (msg/s = messages listed per second)")
        for n in sizes:
            listing(root, f"box{n}", n, runs=max(3, 10 // q), cli_runs=max(3, 10 // q))
    print(f"({'quick run, ' if args.quick else ''}{os.cpu_count()} cores, python {sys.version.split()[0]}, "
          f"git {subprocess.run(['git', 'version'], capture_output=True, text=True).stdout.split()[-1]}, "
          f"load average {load:.1f} at start, {time.perf_counter() - began:.0f} s in all, "
          f"repository on {args.dir or tempfile.gettempdir()})")


if __name__ == "__main__":
    main()
