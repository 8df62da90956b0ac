"""Claims: the pre-commit check at scale, and the early conflict scan.

Builds a throw-away demo repository (isolated HOME and git config), then:

1. 50 agents hold 1,000 active exclusive claims (20 each: folders, file globs, and some
   that start with a wildcard, so every path is tried against them); 10,000 new files are
   staged by the human, none of them claimed (the worst case: every path is looked at).
   Printed: the claims check of the pre-commit hook in-process (`git diff --cached`, every
   claim read in one batch, the match), and the whole `git aipass hook pre-commit` process
   as a commit runs it (its audit of 10,000 staged files included);
2. 30 live desks (each a branch with two commits), every desk editing one of ten shared
   files on the same line as two others, so merge-tree runs for many pairs: `git aipass
   conflicts --json` as a process, and the scan in-process.

    python bench/claims.py [--runs N]

Goals (claims issue): pre-commit check with 1,000 claims over 10,000 staged paths
<= 100 ms; conflict scan of 30 live desks <= 2 s.
"""

from __future__ import annotations

import argparse
import compileall
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import demo_repo, show  # noqa: E402

import aipass_git  # noqa: E402

AGENTS, CLAIMS_EACH, STAGED, DESKS = 50, 20, 10_000, 30


def git(repo: Path, *args: str, data: str | None = None) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True, input=data).stdout


def timed(fn, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def fill_claims(repo_path: Path) -> None:
    from aipass_git.agents.identity import agent_ident
    from aipass_git.agents.registry import Registry
    from aipass_git.claims import claim
    from aipass_git.core.repo import discover
    from aipass_git.store.events import EventStore

    repo = discover(repo_path)
    names = [f"worker{i:02d}" for i in range(AGENTS)]
    Registry(repo).create_many([{"name": n, "role": "bench worker"} for n in names])
    with EventStore(repo) as store:
        for i, name in enumerate(names):
            globs = [f"pkg{i:02d}/mod{j:02d}/**" for j in range(CLAIMS_EACH - 2)]
            globs += [f"pkg{i:02d}/*.cfg", f"**/generated_{i:02d}_*.py"]
            claim.take(store, name, globs, author=agent_ident(name), ttl_seconds=3600)


def stage_files(repo: Path) -> None:
    for i in range(STAGED):
        folder = repo / "work" / f"dir{i // 100:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"file{i % 100:03d}.py").write_text(f"value = {i}\n")
    git(repo, "add", "work")


def live_desks(repo: Path) -> None:
    shared = repo / "shared"
    shared.mkdir(exist_ok=True)
    for k in range(10):
        (shared / f"s{k}.txt").write_text("".join(f"line {n}\n" for n in range(20)))
    git(repo, "add", "shared")
    git(repo, "commit", "-qm", "shared files", "--no-verify")
    base = git(repo, "rev-parse", "HEAD").strip()
    for d in range(DESKS):
        git(repo, "checkout", "-q", "-b", f"aipass/worker{d:02d}", base)
        (repo / f"own{d:02d}.txt").write_text(f"desk {d}\n")
        text = (shared / f"s{d % 10}.txt").read_text().replace("line 5\n", f"line 5 by desk {d}\n")
        (shared / f"s{d % 10}.txt").write_text(text)
        git(repo, "add", "-A", f"own{d:02d}.txt", "shared")
        git(repo, "commit", "-qm", f"desk {d}: shared edit", "--no-verify")
        (repo / f"own{d:02d}.txt").write_text(f"desk {d}, second\n")
        git(repo, "commit", "-qam", f"desk {d}: own file", "--no-verify")
    git(repo, "checkout", "-q", "main")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    compileall.compile_dir(Path(aipass_git.__file__).parent, quiet=1)  # as an installed package has them

    with tempfile.TemporaryDirectory(prefix="aipass-bench-") as tmp_name:
        repo_path = demo_repo(Path(tmp_name))
        from aipass_git.core.repo import discover
        from aipass_git.hooks import guard
        from aipass_git.prs import conflicts

        t0 = time.perf_counter()
        fill_claims(repo_path)
        stage_files(repo_path)
        print(f"setup: {AGENTS} agents, {AGENTS * CLAIMS_EACH:,} claims, {STAGED:,} staged files "
              f"in {time.perf_counter() - t0:.1f} s")
        repo = discover(repo_path)
        assert guard._claimed(repo, "human") == []  # nothing staged is claimed: every path is looked at
        show("pre-commit claims check (in-process)", timed(lambda: guard._claimed(repo, "human"), args.runs), "<= 100 ms")
        hook = ["git", "aipass", "hook", "pre-commit"]
        show("whole pre-commit hook (process, audit of the staged files included)",
             timed(lambda: subprocess.run(hook, cwd=repo_path, check=True, capture_output=True), max(3, args.runs // 3)))
        git(repo_path, "reset", "-q")

        live_desks(repo_path)
        found = conflicts.find(repo, "main")
        print(f"{DESKS} live desks: {len(found)} conflicts ahead")
        cmd = ["git", "aipass", "conflicts", "--json"]
        show("conflict scan of 30 desks (process)", timed(lambda: subprocess.run(cmd, cwd=repo_path, check=True,
                                                                                  capture_output=True), 5), "<= 2 s")
        show("conflict scan of 30 desks (in-process)", timed(lambda: conflicts.find(repo, "main"), 5))


if __name__ == "__main__":
    main()
