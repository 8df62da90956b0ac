"""The merge queue: 30 agents' PRs merged in one `pr merge --all`.

    python bench/prs.py [--prs 30]

Prints the seconds per merge with and without the audit of the merged tree, and the total.
Goal (issue 7): <= 1 s per merge, excluding the audit.
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

from common import demo_repo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prs", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="aipass-bench-") as tmp_name:
        tmp = Path(tmp_name)
        repo_path = demo_repo(tmp)

        from aipass_git.agents.registry import Registry
        from aipass_git.core.repo import discover
        from aipass_git.prs import queue as queue_mod
        from aipass_git.prs.requests import open_pr

        repo = discover(repo_path)
        registry = Registry(repo)
        for i in range(args.prs):
            name = f"b{i:02d}"
            registry.create(name, role="bench", provider="command")
            desk = tmp / f"desk-{name}"
            subprocess.run(["git", "worktree", "add", "-q", "-b", f"aipass/{name}", str(desk)], cwd=repo_path, check=True)
            (desk / "work").mkdir()
            for j in range(5):
                (desk / f"work/{name}-{j}.py").write_text(f"def f{j}():\n    return {j}\n")
            subprocess.run(["git", "add", "-A"], cwd=desk, check=True)
            subprocess.run(["git", "-c", "core.hooksPath=/dev/null", "commit", "-qm", f"{name}: work"], cwd=desk, check=True)
            os.environ["AIPASS_AGENT"] = name
            open_pr(discover(desk), title=f"{name}: work")
            del os.environ["AIPASS_AGENT"]

        audit_seconds: list[float] = []
        original = queue_mod.MergeQueue._audit

        def timed_audit(self, tree, base):
            t0 = time.perf_counter()
            try:
                return original(self, tree, base)
            finally:
                audit_seconds.append(time.perf_counter() - t0)

        queue_mod.MergeQueue._audit = timed_audit
        queue = queue_mod.MergeQueue(repo)
        per_merge = []
        from aipass_git.prs.requests import list_prs

        t_all = time.perf_counter()
        for pr in list_prs(repo, "open"):
            t0 = time.perf_counter()
            outcome = queue.merge(pr["id"])
            per_merge.append(time.perf_counter() - t0)
            assert outcome.result == "merged", outcome
        total = time.perf_counter() - t_all
        without = [m - a for m, a in zip(per_merge, audit_seconds)]
        print(f"{len(per_merge)} PRs merged in {total:.1f} s")
        print(f"per merge, excluding the audit: median {statistics.median(without):.3f} s, max {max(without):.3f} s")
        print(f"per merge, with the audit:      median {statistics.median(per_merge):.3f} s, max {max(per_merge):.3f} s")
        print(f"audit of the merged tree:       median {statistics.median(audit_seconds):.3f} s")
        print(f"({os.cpu_count()} cores, python {sys.version.split()[0]})")


if __name__ == "__main__":
    main()
