"""Memory figures: archiving and indexing throughput, search latency, cold search, disk.

    python bench/memory.py [--sizes 10000,100000] [--queries 50]
    python bench/memory.py --recall [--sizes 1000,100000] [--queries 200] [--sweep]

Entries are synthetic sentences written into an agent's archive files in a throw-away
demo repository, then indexed by `git aipass`'s own code (ChromaDB + the offline int8
MiniLM model). Goals: search p50 <= 30 ms warm at 100,000 entries, including embedding
the query; cold CLI search <= 1.2 s, and <= 150 ms while `git aipass daemon` runs.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import demo_repo, p95, warm_process

SUBJECTS = ["the parser", "the invoice job", "the login page", "the CI runner", "the cache", "the API gateway",
            "the nightly export", "the search index", "the payment webhook", "the mobile client", "the scheduler",
            "the email queue", "the report builder", "the auth token refresh", "the database migration"]
VERBS = ["fails when", "slows down when", "must be restarted after", "logs a warning if", "breaks if",
         "needs a retry when", "times out when", "returns stale data after", "double-counts when", "skips rows if"]
CAUSES = ["the input has empty lines", "two users edit at once", "the clock jumps", "the disk is nearly full",
          "a field is null", "the locale is not English", "the network drops for a second", "the batch exceeds 1000",
          "the token expired", "the file has a BOM", "the timezone is UTC+14", "a deploy runs in parallel"]


def sentence(rng: random.Random) -> str:
    return f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(CAUSES)}; seen {rng.randint(1, 99)} times"


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=None, help="entry counts (default 10000,100000; with --recall 1000,100000)")
    parser.add_argument("--queries", type=int, default=None, help="default 50; with --recall 200")
    parser.add_argument("--recall", action="store_true", help="recall@1/@5 and MRR of each search mode on a labelled set")
    parser.add_argument("--sweep", action="store_true", help="with --recall: try the fusion's parameters on the dev half")
    args = parser.parse_args()
    import aipass_git  # noqa: E402

    compileall.compile_dir(Path(aipass_git.__file__).parent, quiet=1)  # cold starts as an installed package has them
    sizes = [int(s) for s in (args.sizes or ("1000,100000" if args.recall else "10000,100000")).split(",")]
    if args.recall:
        with tempfile.TemporaryDirectory(prefix="aipass-bench-") as tmp_name:
            repo_path = demo_repo(Path(tmp_name))
            from aipass_git.core.repo import discover
            from recall import run

            run(discover(repo_path), repo_path, sizes, args.queries or 200, args.sweep)
        return
    args.queries = args.queries or 50
    rng = random.Random(5)

    with tempfile.TemporaryDirectory(prefix="aipass-bench-") as tmp_name:
        repo_path = demo_repo(Path(tmp_name))

        from aipass_git.core import config as config_mod, ids
        from aipass_git.core.repo import discover
        from aipass_git.memory import index as index_mod, working

        repo = discover(repo_path)
        config = config_mod.load(repo)

        # archiving through the real write path: each add commits, and past the cap archives
        t0 = time.perf_counter()
        adds = 50
        for i in range(adds):
            working.record(repo, config, "api", "learning", sentence(rng), message_by="bench")
        seconds = time.perf_counter() - t0
        print(f"memory add, one entry a commit (caps, archive): {adds / seconds:.0f} entries/s ({seconds / adds * 1000:.1f} ms each)")
        batch_file = Path(tmp_name) / "batch.jsonl"
        batch_times = []
        for _ in range(3):
            batch_file.write_text("".join(json.dumps({"text": sentence(rng)}) + "\n" for _ in range(1000)))
            t0 = time.perf_counter()
            subprocess.run(["git", "aipass", "memory", "add", "--from", str(batch_file), "--agent", "@api"],
                           cwd=repo_path, check=True, stdout=subprocess.DEVNULL)
            batch_times.append(time.perf_counter() - t0)
        print(f"`git aipass memory add --from` 1,000 entries, one commit: median {statistics.median(batch_times):.2f} s "
              f"(runs {', '.join(f'{t:.2f}' for t in batch_times)})")
        t0 = time.perf_counter()
        stats = index_mod.MemoryIndex(repo).sync()
        seconds = time.perf_counter() - t0
        print(f"  then the index takes them in: {stats['entries']:,} entries, {stats['embedded']:,} embedded, "
              f"{stats['reused']:,} vectors reused, {seconds:.1f} s")

        archive_dir = repo_path / ".aipass/agents/api/archive"
        archive_dir.mkdir(exist_ok=True)
        written = 0
        idx = index_mod.MemoryIndex(repo)
        for size in sizes:
            # more archive entries, written straight into month files (the index's input)
            with open(archive_dir / f"2025-{len(list(archive_dir.glob('2025-*'))) + 1:02d}.jsonl", "w") as fh:
                for _ in range(size - written):
                    entry = {"id": ids.new_id(), "created": "2025-06-01T00:00:00Z", "text": sentence(rng)}
                    fh.write(json.dumps({"archived": "2025-07-01T00:00:00Z", "section": "learnings", "entry": entry}) + "\n")
            t0 = time.perf_counter()
            stats = idx.sync()
            seconds = time.perf_counter() - t0
            print(f"\n{size:,} entries")
            print(f"  index {stats['entries']:,} new entries: {stats['entries'] / seconds:.0f} entries/s ({seconds:.1f} s)")
            # what archiving does day to day: a few more lines at the end of a big month's file
            with open(sorted(archive_dir.glob("2025-*"))[-1], "a") as fh:
                for _ in range(1000):
                    entry = {"id": ids.new_id(), "created": "2025-06-01T00:00:00Z", "text": sentence(rng)}
                    fh.write(json.dumps({"archived": "2025-07-01T00:00:00Z", "section": "learnings", "entry": entry}) + "\n")
            t0 = time.perf_counter()
            stats = idx.sync()
            seconds = time.perf_counter() - t0
            print(f"  then {stats['entries']:,} appended to that month's file: {stats['entries'] / seconds:.0f} entries/s "
                  f"({seconds:.1f} s)")
            written = size + 1000
            latencies = []
            for _ in range(args.queries):
                query = f"{rng.choice(SUBJECTS)} {rng.choice(['breaks', 'is slow', 'fails'])} when {rng.choice(CAUSES)}"
                t0 = time.perf_counter()
                idx.sync()  # what every search pays: the change check
                idx.search(query, ["api"], 5)
                latencies.append((time.perf_counter() - t0) * 1000)
            print(f"  search warm (with the change check and embedding the query): "
                  f"p50 {statistics.median(latencies):.1f} ms, p95 {p95(latencies):.1f} ms")
            colds = []
            for _ in range(3):
                t0 = time.perf_counter()
                subprocess.run(["git", "aipass", "memory", "search", "the parser fails on empty lines", "@api", "--json"],
                               cwd=repo_path, check=True, stdout=subprocess.DEVNULL)
                colds.append(time.perf_counter() - t0)
            print(f"  cold `git aipass memory search`: median {statistics.median(colds):.2f} s")
            # the same command while `git aipass daemon` runs: it answers with the model loaded
            daemon = subprocess.Popen(["git", "aipass", "daemon", "run"], cwd=repo_path,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                search_cmd = ["git", "aipass", "memory", "search", "the parser fails on empty lines", "@api", "--json"]
                while not (repo.runtime_dir / "memory.sock").exists():
                    time.sleep(0.05)
                subprocess.run(search_cmd, cwd=repo_path, check=True, stdout=subprocess.DEVNULL)  # the daemon loads the model
                for label in ("with the daemon", "with the daemon, handed to the warm process"):
                    with warm_process(repo_path) if "warm" in label else contextlib.nullcontext():
                        served = []
                        for _ in range(7):
                            t0 = time.perf_counter()
                            out = subprocess.run(search_cmd, cwd=repo_path, check=True, capture_output=True, text=True).stdout
                            served.append(time.perf_counter() - t0)
                            assert json.loads(out)["served"], "the daemon did not answer"
                    print(f"  cold `git aipass memory search` {label}: median {statistics.median(served) * 1000:.0f} ms, "
                          f"p95 {p95(served) * 1000:.0f} ms")
            finally:
                daemon.terminate()
                daemon.wait()
            print(f"  index on disk: {du(repo.runtime_dir / 'memory-index') / 2**20:.0f} MiB")
        print(f"\n({os.cpu_count()} cores, python {sys.version.split()[0]})")


if __name__ == "__main__":
    main()
