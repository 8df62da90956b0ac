"""Audit and hook figures on a generated repository: 30 agents, 1,000 files.

    python bench/audit.py [--runs 5]

Goals (issue 6): full audit <= 10 s, `--changed` audit <= 1 s, reference-transaction
with nothing to do <= 20 ms.
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


def timed(argv: list[str], cwd: Path, runs: int, ok=(0, 1)) -> list[float]:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.run(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        out.append((time.perf_counter() - t0) * 1000)
        if proc.returncode not in ok:
            sys.exit(f"{' '.join(argv)} failed: {proc.stderr.decode()}")
    return out


def show(label: str, values: list[float]) -> None:
    print(f"{label:<58} median {statistics.median(values):8.1f} ms   p95 {p95(values):8.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="aipass-bench-") as tmp_name:
        repo = demo_repo(Path(tmp_name))
        from aipass_git.agents.registry import Registry
        from aipass_git.core.repo import discover

        registry = Registry(discover(repo))
        for i in range(30):
            module = repo / f"src/pkg{i:02d}"
            module.mkdir(parents=True)
            for j in range(30):
                (module / f"mod{j:02d}.py").write_text(f'"""module {j}"""\n\n\ndef f{j}(x):\n    return x + {j}\n' * 3)
            (repo / "tests").mkdir(exist_ok=True)
            (repo / f"tests/test_pkg{i:02d}.py").write_text("def test_ok():\n    assert True\n")
        for k in range(70):
            (repo / f"docs/page{k:02d}.md").parent.mkdir(exist_ok=True)
            (repo / f"docs/page{k:02d}.md").write_text(f"# page {k}\n\ntext\n" * 20)
        subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
        subprocess.run(["git", "-c", "core.hooksPath=/dev/null", "commit", "-qm", "generated"], cwd=repo, check=True)
        for i in range(30):
            registry.create(f"agent{i:02d}", role="owns a package", provider="command", owns=[f"src/pkg{i:02d}/**"])
        files = len(subprocess.run(["git", "ls-files"], cwd=repo, capture_output=True, text=True).stdout.splitlines())
        print(f"repository: {files} files, 33 agents\n")
        show("git aipass audit (full)", timed(["git", "aipass", "audit"], repo, args.runs))
        (repo / "src/pkg00/mod00.py").write_text("def changed():\n    return 1\n")
        show("git aipass audit --changed (one file changed)", timed(["git", "aipass", "audit", "--changed"], repo, args.runs))
        subprocess.run(["git", "checkout", "--", "."], cwd=repo, check=True)

        subprocess.run(["git", "aipass", "hooks", "install"], cwd=repo, check=True, stdout=subprocess.DEVNULL)
        for label, argv in (
            ("reference-transaction, nothing to do (git update-ref)", ["git", "update-ref", "refs/heads/bench", "HEAD"]),
            ("post-checkout, nothing to do (git checkout -q -B x)", ["git", "checkout", "-q", "-B", "bench-branch"]),
        ):
            with_hooks = timed(argv, repo, args.runs * 4)
            without = timed(["git", "-c", "core.hooksPath=/dev/null", *argv[1:]], repo, args.runs * 4)
            show(f"{label}: hook overhead", [a - b for a, b in zip(sorted(with_hooks), sorted(without))])
        (repo / "x.txt").write_text("x")
        subprocess.run(["git", "add", "x.txt"], cwd=repo, check=True)
        commits = []
        for n in range(args.runs):
            (repo / "x.txt").write_text(f"x{n}")
            subprocess.run(["git", "add", "x.txt"], cwd=repo, check=True)
            t0 = time.perf_counter()
            subprocess.run(["git", "commit", "-qm", f"c{n}"], cwd=repo, check=True)
            commits.append((time.perf_counter() - t0) * 1000)
        show("git commit of one file, with the pre-commit hook", commits)
        print(f"({os.cpu_count()} cores, python {sys.version.split()[0]})")


if __name__ == "__main__":
    main()
