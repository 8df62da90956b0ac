"""Plans: reading a big plan and finding what is ready across many.

Builds a throw-away demo repository (isolated HOME and git config) with a project template
of 100 phases in a chain of layers and 100 open plans of the shipped `build` template,
then prints median and p95 wall times (a new process each run, as a user runs them):

1. `git aipass plan show ID --json` of the 100-phase plan;
2. `git aipass plan ready --json` over the 100 open plans (plus the big one);
3. phase done -> next phase's CLI started: a chain of phases whose owners (two agents,
   taking turns) run a one-line shell provider that notes when it starts, replies, and
   notes when it ends; the figure is each gap from a run's end to the next phase's start
   (the supervisor's finish, `plan advance` in a process of its own, the dispatch, the
   next supervisor's wake).

    python bench/plans.py [--runs N] [--chain N]

Goals (from the plans issue): a 100-phase plan's `plan show` <= 200 ms; `plan ready` over
100 open plans <= 200 ms; phase done -> next CLI started <= 1 s.
"""

from __future__ import annotations

import argparse
import compileall
import json
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


def chain_gaps(tmp: Path, phases: int) -> list[float]:
    """Seconds from each phase's CLI ending to the next phase's CLI starting."""
    (tmp / "chain").mkdir()
    repo = demo_repo(tmp / "chain")
    starts, ends = tmp / "starts.txt", tmp / "ends.txt"
    config = repo / ".aipass/config.yaml"
    text = config.read_text()
    provider = (f'\n  replier:\n    argv: [sh, -c, "echo $(date +%s.%N) >> {starts}; '
                f'git aipass reply $AIPASS_DISPATCH done >/dev/null; echo $(date +%s.%N) >> {ends}"]')
    config.write_text(text.replace("\n  command:\n", provider + "\n  command:\n", 1))
    lines = ['description: "a chain of replies"', "phases:"]
    for i in range(phases):
        after = f", depends_on: [p{i - 1:03d}]" if i else ""
        lines.append(f'  - {{name: p{i:03d}, owner: r{i % 2}, task: "step {i}", done_when: reply{after}}}')
    (repo / ".aipass/plan-templates").mkdir(parents=True, exist_ok=True)
    (repo / ".aipass/plan-templates/replies.yaml").write_text("\n".join(lines) + "\n")
    subprocess.run(["git", "add", "-A", ".aipass"], cwd=repo, check=True)
    subprocess.run(["git", "commit", "-qm", "bench: a replying provider and a chain"], cwd=repo, check=True)
    for name in ("r0", "r1"):
        aipass(repo, "agent", "new", name, "--role", "replies at once", "--provider", "replier")
    plan_id = json.loads(aipass(repo, "plan", "new", "the chain", "-t", "replies", "--json"))["plan"]["id"]
    deadline = time.monotonic() + 60 + 10 * phases
    while json.loads(aipass(repo, "plan", "show", plan_id, "--json"))["plan"]["state"] == "open":
        if time.monotonic() > deadline:
            raise SystemExit("the chain did not finish; see: git aipass log")
        time.sleep(0.2)
    while any(a["state"] != "idle" for a in json.loads(aipass(repo, "status", "--json"))["agents"]):
        time.sleep(0.2)  # the supervisors finish their bookkeeping before the folder goes
    began = sorted(float(x) for x in starts.read_text().split())
    ended = sorted(float(x) for x in ends.read_text().split())
    return [b - e for e, b in zip(ended, began[1:])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--chain", type=int, default=21, help="phases in the chain (default 21: 20 gaps)")
    args = parser.parse_args()
    # as bench/startup.py: with PYTHONDONTWRITEBYTECODE set, each start would compile every
    # module and the figures would measure that
    compileall.compile_dir(Path(aipass_git.__file__).parent, quiet=1)
    with tempfile.TemporaryDirectory(prefix="aipass-bench-plans-", ignore_cleanup_errors=True) as tmp_name:
        repo = demo_repo(Path(tmp_name))
        (repo / ".aipass/plan-templates").mkdir(parents=True, exist_ok=True)
        (repo / ".aipass/plan-templates/chain.yaml").write_text(big_template(100))
        big = json.loads(aipass(repo, "plan", "new", "the big one", "-t", "chain", "--no-start", "--json"))["plan"]["id"]
        for i in range(100):
            aipass(repo, "plan", "new", f"plan {i}", "-t", "build", "--set", "agent=api", "--no-start")
        show("plan show (100 phases)", timed(repo, ["plan", "show", big, "--json"], args.runs))
        ready = json.loads(aipass(repo, "plan", "ready", "--json"))["ready"]
        show(f"plan ready (101 open plans, {len(ready)} phases ready)", timed(repo, ["plan", "ready", "--json"], args.runs))
        show(f"phase done -> next phase's CLI started ({args.chain} phases)", chain_gaps(Path(tmp_name), args.chain))


if __name__ == "__main__":
    main()
