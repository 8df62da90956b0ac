"""A closed plan, remembered: its summary (phases and their outcomes, the PRs merged for
it, the time it took) goes to the orchestrator's memory archive, so `memory search`
finds past plans; a `remembered` event on the plan's ref records the commit, so it is
written once however many processes see the plan close.
"""

from __future__ import annotations

from typing import Any

from aipass_git.agents.session import Session
from aipass_git.core import clock
from aipass_git.core.errors import AipassError
from aipass_git.core.names import HUMAN
from aipass_git.core.text import plural
from aipass_git.dispatch.runtime import Runtime
from aipass_git.memory import working
from aipass_git.plans import plan as plan_mod
from aipass_git.prs import record
from aipass_git.store.events import EventStore
from aipass_git.store.worktree_commit import worktree_lock

SECTION = "plans"  # the archive section `memory search` shows for these entries


def text_of(doc: dict[str, Any], prs: list[dict[str, Any]]) -> str:
    """The summary: one line for the plan, one per phase, one per PR."""
    took = ""
    if doc.get("ended"):
        seconds = int((clock.parse(doc["ended"]) - clock.parse(doc["created"])).total_seconds())
        took = f" in {_duration(seconds)}"
    lines = [f"Plan {doc['id'][:12]} \"{doc['title']}\" ({doc['template']}) {doc['state']}{took}, "
             f"{plural(len(doc['phases']), 'phase')}, owner @{doc['owner']}."]
    for p in doc["phases"]:
        lines.append(f"- {p['name']} @{p['owner']}: {p['state']} ({p['done_when']})")
    for pr in prs:
        lines.append(f"- PR {pr['id'][:12]} {pr['branch']}: {pr['title']} ({pr['state']})")
    failures = [n["text"] for n in doc["notes"] if " failed: " in n["text"]]
    lines += [f"- {f}" for f in failures[-3:]]
    return "\n".join(lines)[:working.DEFAULT_ENTRY_MAX_CHARS]


def _duration(seconds: int) -> str:
    if seconds < 3600:
        return f"{max(seconds // 60, 1)} min"
    if seconds < 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} d {seconds % 86400 // 3600} h"


def remember(session: Session, plan_id: str) -> str | None:
    """Record the summary of a closed plan not yet remembered; returns the memory commit.
    A plan whose orchestrator is the human has no agent memory to go to: nothing is written."""
    repo = session.repo
    orchestrator = session.config.orchestrator
    if orchestrator == HUMAN:
        return None
    # the worktree's commit lock around read, write and record: of the processes that see
    # the plan close here (the supervisor's, the merge queue's), one writes the summary
    with worktree_lock(repo), EventStore(repo) as store:
        doc = plan_mod.PlanBook(store).get(plan_id)
        if doc["state"] != "closed" or doc.get("remembered"):
            return None
        dispatches = {p["dispatch"] for p in doc["phases"] if p["dispatch"]}
        prs = [pr for pr in record.PRBook(store).all() if pr.get("dispatch") in dispatches]
        try:
            _, commit = working.archive_record(repo, session.config, orchestrator, SECTION, text_of(doc, prs),
                                               message_by=session.speaker.name)
        except AipassError as exc:  # the plan is closed either way; the next `plan advance` tries again
            Runtime(repo).log("plan-not-remembered", orchestrator, plan=doc["id"], error=exc.message)
            return None
        if commit:
            store.append(plan_mod.ref_for(doc["id"]), plan_mod.remembered(doc["id"], commit, session.speaker.author))
        return commit
