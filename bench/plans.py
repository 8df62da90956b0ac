"""Plans: reading a big plan and finding what is ready across many.

Builds a throw-away demo repository (isolated HOME and git config) with a project template
of 100 phases in a chain of layers and 100 open plans of the shipped `build` template,
then prints median and p95 wall times (a new process each run, as a user runs them):

1. `git aipass plan show ID --json` of the 100-phase plan;
2. `git aipass plan ready --json` over the 100 open plans (plus the big one).

    python bench/plans.py [--runs N]

Goals (from the plans issue): a 100-phase plan's `plan show` <= 200 ms; `plan ready` over
100 open plans <= 200 ms. (Phase done -> next phase's CLI started is left to the next slice,
when the done-rules are driven by the merge queue and the audit.)
"""

from __future__ import annotations

import argparse
import compileall
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import demo_repo, p95  # noqa: E402

import aipass_git  # noqa: E402


def aipass(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "aipass", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


def big_template(phases: int) -> str:
    lines = ['description: "a long chain of layers"', "phases:"]
    for i in range(phases):
        after = f", depends_on: [p{i - 1:03d}]" if i else ""
        lines.append(f'  - {{name: p{i:03d}, owner: api, task: "step {i} of {{title}}"{after}}}')
    return "\n".join(lines) + "\n"


def timed(repo: Path, args: list[str], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        aipass(repo, *args)
        out.append(time.perf_counter() - start)
    return out


def show(label: str, values: list[float]) -> None:
    ms = [v * 1000 for v in values]
    print(f"{label:<52} median {statistics.median(ms):7.1f} ms   p95 {p95(ms):7.1f} ms   (n={len(ms)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    # as bench/startup.py: with PYTHONDONTWRITEBYTECODE set, each start would compile every
    # module and the figures would measure that
    compileall.compile_dir(Path(aipass_git.__file__).parent, quiet=1)
    with tempfile.TemporaryDirectory(prefix="aipass-bench-plans-") as tmp_name:
        repo = demo_repo(Path(tmp_name))
        (repo / ".aipass/plan-templates").mkdir(parents=True, exist_ok=True)
        (repo / ".aipass/plan-templates/chain.yaml").write_text(big_template(100))
        big = json.loads(aipass(repo, "plan", "new", "the big one", "-t", "chain", "--no-start", "--json"))["plan"]["id"]
        for i in range(100):
            aipass(repo, "plan", "new", f"plan {i}", "-t", "build", "--set", "agent=api", "--no-start")
        show("plan show (100 phases)", timed(repo, ["plan", "show", big, "--json"], args.runs))
        ready = json.loads(aipass(repo, "plan", "ready", "--json"))["ready"]
        show(f"plan ready (101 open plans, {len(ready)} phases ready)", timed(repo, ["plan", "ready", "--json"], args.runs))


if __name__ == "__main__":
    main()
