"""The figures of `git aipass report`, from what the repository already records: the
runtime log (dispatch outcomes and run times), the mail summary index (volume and
response times), the PR refs (lead time, bounce causes, the merge queue's audits), the
agents' memory files and the plans. One `git log` reads every PR's events; nothing is
read per item.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from datetime import datetime, timezone
from typing import Any

from aipass_git.agents.registry import Registry
from aipass_git.core import clock, git
from aipass_git.core.repo import Repo
from aipass_git.dispatch.runtime import Runtime
from aipass_git.mail.summary_index import SummaryIndex
from aipass_git.plans import plan as plan_mod
from aipass_git.prs import record
from aipass_git.store.events import EventStore


def _day(stamp: str) -> str:
    return stamp[:10]


def _seconds(a: str, b: str) -> float:
    return (clock.parse(b) - clock.parse(a)).total_seconds()


def _spread(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"count": 0, "median": None, "p95": None}
    ordered = sorted(values)
    return {"count": len(values), "median": round(statistics.median(ordered), 1),
            "p95": round(ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))], 1)}


def gather(repo: Repo, since: datetime | None = None) -> dict[str, Any]:
    """Every figure of the report, as plain data (what `report --json` prints)."""
    cut = since.strftime("%Y-%m-%dT%H:%M:%SZ") if since else ""
    events = [e for e in Runtime(repo).events() if e.get("time", "") >= cut]
    outcomes: dict[str, Counter] = defaultdict(Counter)
    per_day: dict[str, Counter] = defaultdict(Counter)
    started: dict[str, str] = {}
    runs = []
    for e in events:
        if e.get("event") == "start" and e.get("dispatch"):
            started.setdefault(e["dispatch"], e["time"])
        if e.get("event") == "finished" and e.get("agent"):
            outcomes[e["agent"]][e.get("result", "?")] += 1
            per_day[_day(e["time"])][e.get("result", "?")] += 1
            if e.get("dispatch") in started:
                runs.append(_seconds(started[e["dispatch"]], e["time"]))
    with EventStore(repo) as store:
        with SummaryIndex(store) as index:
            lines = [line for _, line in index.all_lines() if line["created"] >= cut]
        prs = [p for p in record.PRBook(store).all() if p["created"] >= cut]
        plans = [d for d in plan_mod.PlanBook(store).all() if d["state"] in ("open", "blocked")]
    by_id = {l["id"]: l for l in lines}
    mail_days = Counter(_day(l["created"]) for l in lines)
    answers = [_seconds(by_id[l["in_reply_to"]]["created"], l["created"]) for l in lines
               if l.get("in_reply_to") in by_id and l["kind"] == "reply"]
    merged_at = _merged_times(repo)
    lead = [_seconds(p["created"], merged_at[p["id"]]) for p in prs if p["state"] == "merged" and p["id"] in merged_at]
    causes = Counter((p.get("reason") or "?").split(":")[0] for p in prs if p["state"] == "bounced")
    audits: dict[str, int] = defaultdict(int)
    for p in prs:
        if p.get("audit"):
            audits[_day(p["audit"]["at"])] += p["audit"]["errors"]
    memory = {}
    for agent in Registry(repo).all():
        path = repo.agents_dir / agent.name / "memory.json"
        memory[agent.name] = path.stat().st_size if path.is_file() else 0
    return {
        "v": 1, "since": cut or None, "made": clock.utc_now(),
        "dispatches": {"by_agent": {a: dict(c) for a, c in sorted(outcomes.items())},
                       "by_day": {d: dict(c) for d, c in sorted(per_day.items())},
                       "run_seconds": _spread(runs), "runs": [round(r, 1) for r in runs]},
        "mail": {"by_day": dict(sorted(mail_days.items())), "total": len(lines),
                 "answer_seconds": _spread(answers)},
        "prs": {"states": dict(Counter(p["state"] for p in prs)), "lead_seconds": _spread(lead),
                "bounce_causes": dict(causes)},
        "audit": {"errors_by_day": dict(sorted(audits.items()))},
        "memory_bytes": memory,
        "plans": [{"id": d["id"], "title": d["title"], "state": d["state"],
                   "done": sum(p["state"] == "done" for p in d["phases"]), "phases": len(d["phases"])} for d in plans],
    }


def _merged_times(repo: Repo) -> dict[str, str]:
    """PR id -> when its `merged` event was written, from one `git log` over every PR ref."""
    sep = "\x1f"
    out = git.output(["log", "--glob=refs/aipass/prs/*", "--no-merges",
                      f"--format=%cI{sep}%(trailers:key=Aipass-Event,valueonly,separator=){sep}"
                      f"%(trailers:key=Aipass-PR,valueonly,separator=)"], repo.root)
    found = {}
    for line in out.splitlines():
        parts = line.split(sep)
        if len(parts) == 3 and parts[1] == "merged" and parts[2]:
            found[parts[2]] = datetime.fromisoformat(parts[0]).astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return found
