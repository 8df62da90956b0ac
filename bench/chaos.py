"""Chaos: kill aipass-git's write paths at random moments and at every named fault point,
and count the kills that left anything a person would have to repair.

    python bench/chaos.py [--kills 100] [--paths send,broadcast,memory,merge]

Write paths: a send to one mailbox, a broadcast (`send @all` to four agents), `memory add` (commits on
the checked-out branch, with the caps archiving), and the merge queue into a checked-out
base. Each is killed --kills times at a random moment (the process alone, or its whole
group with its git children, alternately), and once at each of its fault points
(AIPASS_FAULT). After every kill the next command must succeed without help, git fsck
must be clean, nothing acknowledged may be missing and nothing delivered twice; a
failure is printed with what broke. Last, the time the next send takes after a stale ref
lock (goal: <= 1 s).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import demo_repo, p95

SENDER = """
import sys
from aipass_git.core.repo import discover
from aipass_git.mail.postoffice import PostOffice
repo, to, tag = sys.argv[1], sys.argv[2], sys.argv[3]
with PostOffice(discover(repo)) as po:
    for i in range(100000):
        [m] = po.send([to], f"{tag}-{i}", "b")[:1]
        print(m["subject"], flush=True)
"""

ADDER = """
import sys
from aipass_git.core import config
from aipass_git.core.repo import discover
from aipass_git.memory import working
repo = discover(sys.argv[1])
for i in range(100000):
    working.record(repo, config.load(repo), "api", "learning", f"{sys.argv[2]}-{i}", message_by="chaos")
    print(f"{sys.argv[2]}-{i}", flush=True)
"""

MERGER = """
import sys
from aipass_git.core.repo import discover
from aipass_git.prs.queue import MergeQueue
MergeQueue(discover(sys.argv[1])).merge_all()
"""

POINTS = {
    "send": ["event-written", "refs-locked", "refs-locked:1:group"],
    "broadcast": ["batch-imported", "batch-journalled", "refs-locked", "refs-locked:1:group", "batch-applied"],
    "memory": ["commit-written", "branch-moved", "between-files", "files-written", "temp-written:2"],
    "merge": ["refs-locked:2:group", "base-moved", "merge-recorded", "pr-told"],
}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True).stdout.strip()


def aipass(repo: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "aipass", *args], cwd=repo, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=120)


def spawn(script: str, *args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", script, *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True, start_new_session=True, env={**os.environ, **(env or {})})


def kill(proc: subprocess.Popen, group: bool) -> list[str]:
    """Kill PROC (or its group); return what it acknowledged on stdout before it died."""
    if group:
        os.killpg(proc.pid, signal.SIGKILL)
    else:
        proc.send_signal(signal.SIGKILL)
    out, _ = proc.communicate()
    return out.split()


def fsck_clean(repo: Path) -> str | None:
    proc = subprocess.run(["git", "fsck", "--full", "--no-dangling"], cwd=repo, capture_output=True, text=True)
    return None if proc.returncode == 0 and not proc.stdout.strip() else (proc.stdout + proc.stderr)[:200]


def subjects(repo: Path, owner: str) -> list[str]:
    proc = aipass(repo, "inbox", f"@{owner}", "--all", "--json")
    if proc.returncode != 0:
        raise RuntimeError(f"inbox failed: {proc.stderr.strip()}")
    return [m["subject"] for m in json.loads(proc.stdout)["messages"]]


# -- one trial per write path: kill, then check ----------------------------------------------


def trial_send(repo: Path, rng: random.Random, n: int, fault: str | None) -> str | None:
    proc = spawn(SENDER, str(repo), "@api", f"s{n}", env={"AIPASS_FAULT": fault} if fault else None)
    if fault:
        acked = proc.communicate()[0].split()
    else:
        time.sleep(rng.uniform(0.3, 0.6))
        acked = kill(proc, group=n % 2 == 1)
    if aipass(repo, "send", "@api", f"after-{n}", "b").returncode != 0:
        return "the next send failed"
    got = subjects(repo, "api")
    if not set(acked) <= set(got):
        return f"acknowledged sends missing: {sorted(set(acked) - set(got))[:3]}"
    if len(got) != len(set(got)):
        return "a message was delivered twice"
    return fsck_clean(repo)


def trial_broadcast(repo: Path, rng: random.Random, n: int, fault: str | None, everyone: list[str]) -> str | None:
    env = {"AIPASS_FAULT": fault} if fault else {}
    proc = subprocess.Popen(["git", "aipass", "send", "@all", f"b{n}", "to all"], cwd=repo, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env={**os.environ, **env})
    if fault:
        proc.communicate()
    else:
        time.sleep(rng.uniform(0.15, 0.35))
        kill(proc, group=n % 2 == 1)
    if aipass(repo, "send", "@api", f"after-b{n}", "b").returncode != 0:
        return "the next send failed"
    counts = {who: subjects(repo, who).count(f"b{n}") for who in everyone}
    if set(counts.values()) not in ({0}, {1}):
        return f"delivered to some mailboxes only, or twice: {counts}"
    if git(repo, "for-each-ref", "refs/aipass-import/"):
        return "a scratch ref was left"
    return fsck_clean(repo)


def trial_memory(repo: Path, rng: random.Random, n: int, fault: str | None) -> str | None:
    proc = spawn(ADDER, str(repo), f"m{n}", env={"AIPASS_FAULT": fault} if fault else None)
    if fault:
        acked = proc.communicate()[0].split()
    else:
        time.sleep(rng.uniform(0.3, 0.8))
        acked = kill(proc, group=n % 2 == 1)
    if aipass(repo, "memory", "add", f"after-m{n}", env={"AIPASS_AGENT": "api"}).returncode != 0:
        return "the next memory add failed"
    if git(repo, "status", "--porcelain"):
        return f"the work tree or index was left behind: {git(repo, 'status', '--porcelain')[:120]}"
    memory = json.loads((repo / ".aipass/agents/api/memory.json").read_text())
    archive = [json.loads(l)["entry"]["text"] for p in (repo / ".aipass/agents/api/archive").glob("*.jsonl")
               for l in p.read_text().splitlines() if l]
    kept = {e["text"] for s in ("learnings", "observations", "sessions") for e in memory[s]} | set(archive)
    if not set(acked) <= kept:
        return f"acknowledged entries missing: {sorted(set(acked) - kept)[:3]}"
    if len(archive) != len(set(archive)):
        return "an entry was archived twice"
    return fsck_clean(repo)


def trial_merge(repo: Path, rng: random.Random, n: int, fault: str | None) -> str | None:
    pr = open_pr(repo, n)
    proc = spawn(MERGER, str(repo), env={"AIPASS_FAULT": fault} if fault else None)
    if fault:
        proc.communicate()
    else:
        time.sleep(rng.uniform(0.2, 0.9))
        kill(proc, group=n % 2 == 1)
    rerun = aipass(repo, "pr", "merge", "--all")
    if rerun.returncode != 0:
        return f"the next merge failed: {rerun.stderr.strip()[:160]}"
    if git(repo, "status", "--porcelain"):
        return f"the base's worktree was left behind: {git(repo, 'status', '--porcelain')[:120]}"
    state = json.loads(aipass(repo, "pr", "show", pr, "--json").stdout)["pr"]
    if state["state"] != "merged" or state.get("told") is not True:
        return f"the PR ended {state['state']}, told={state.get('told')}"
    told = [s for s in subjects(repo, "api") if s == f"merged: chaos {n}"]
    if len(told) != 1:
        return f"the author was told {len(told)} times"
    return fsck_clean(repo)


def open_pr(repo: Path, n: int) -> str:
    desk = repo.parent / "desk-api"
    if not desk.exists():
        subprocess.run(["git", "worktree", "add", "-q", "-b", "aipass/api", str(desk)], cwd=repo, check=True)
    subprocess.run(["git", "merge", "-q", "--ff-only", "main"], cwd=desk, check=False, capture_output=True)
    (desk / f"chaos-{n}.txt").write_text(f"{n}\n")
    subprocess.run(["git", "add", "-A"], cwd=desk, check=True)
    subprocess.run(["git", "commit", "-qm", f"chaos {n}"], cwd=desk, check=True)
    proc = subprocess.run(["git", "aipass", "pr", "open", "--title", f"chaos {n}", "--json"], cwd=desk,
                          capture_output=True, text=True, env={k: v for k, v in os.environ.items() if k != "AIPASS_AGENT"})
    return json.loads(proc.stdout)["pr"]["id"]


# -- the run -----------------------------------------------------------------------------------


def run_path(name: str, trial, kills: int, rng: random.Random) -> tuple[int, list[str]]:
    failures, trials = [], 0
    for n, fault in enumerate([None] * kills + POINTS[name]):
        trials += 1
        try:
            problem = trial(n, fault)
        except Exception as exc:  # noqa: BLE001 - a bench reports, it does not stop
            problem = f"{type(exc).__name__}: {exc}"
        if problem:
            failures.append(f"{name} #{n} ({fault or 'random kill'}): {problem}")
    return trials, failures


def stale_lock_next_send(repo: Path, runs: int) -> list[float]:
    lock = repo / ".git/refs/aipass/mail/quality.lock"
    times = []
    for i in range(runs):
        aipass(repo, "send", "@quality", f"warm {i}", "b")
        lock.parent.mkdir(parents=True, exist_ok=True)
        lock.touch()
        os.utime(lock, (time.time() - 60, time.time() - 60))  # left by a kill a minute ago
        t0 = time.perf_counter()
        if aipass(repo, "send", "@quality", f"after lock {i}", "b").returncode != 0:
            raise SystemExit("the send after a stale lock failed")
        times.append((time.perf_counter() - t0) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=100, help="random kills per write path")
    parser.add_argument("--paths", default="send,broadcast,memory,merge", help="which write paths, comma-separated")
    args = parser.parse_args()
    rng = random.Random(20261201)
    with tempfile.TemporaryDirectory(prefix="aipass-chaos-", ignore_cleanup_errors=True) as tmp_name:
        repo = demo_repo(Path(tmp_name))
        os.environ.pop("AIPASS_AGENT", None)
        config = repo / ".aipass/config.yaml"
        config.write_text(config.read_text().replace("memory_entries_per_section: 15", "memory_entries_per_section: 3"))
        subprocess.run(["git", "commit", "-qam", "small caps: every add archives"], cwd=repo, check=True)
        everyone = ["api", "docs", "quality", "devpulse"]
        paths = {
            "send": lambda n, f: trial_send(repo, rng, n, f),
            "broadcast": lambda n, f: trial_broadcast(repo, rng, n, f, everyone),
            "memory": lambda n, f: trial_memory(repo, rng, n, f),
            "merge": lambda n, f: trial_merge(repo, rng, n, f),
        }
        print(f"{'write path':<12}{'random kills':>14}{'fault points':>14}{'failures':>10}")
        all_failures = []
        for name, trial in paths.items():
            if name not in args.paths.split(","):
                continue
            t0 = time.time()
            trials, failures = run_path(name, trial, args.kills, rng)
            all_failures += failures
            print(f"{name:<12}{args.kills:>14}{len(POINTS[name]):>14}{len(failures):>10}   ({time.time() - t0:.0f} s)",
                  flush=True)
        for line in all_failures:
            print("  " + line)
        lock_times = stale_lock_next_send(repo, 10)
        print(f"send after a stale ref lock: median {statistics.median(lock_times):.0f} ms, "
              f"p95 {p95(lock_times):.0f} ms (goal <= 1000 ms)")
        print(f"({os.cpu_count()} cores, python {sys.version.split()[0]})")


if __name__ == "__main__":
    main()
