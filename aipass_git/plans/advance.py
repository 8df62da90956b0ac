"""Moving plans forward: start what is ready, end what finished, with no one to ask.

`start_ready` starts each ready phase: a `phase-started` event first (a compare-and-swap
on the plan's ref: of two processes starting one phase, one writes it), then the task is
dispatched to the phase's owner with the plan and phase in the dispatch's meta, and the
dispatch id is recorded; a human's phase is announced by mail instead.

`advance` looks at the running phases: a phase whose dispatch finished ok and was
answered with a reply is done when its rule is `reply`; a dispatch that was bounced,
crashed or cancelled fails the phase, which blocks the plan and tells its owner. Then
whatever became ready starts. The supervisor runs `plan advance` when a plan's dispatch
ends (a process, so the dispatch layer does not import plans), and so does the merge queue
when it merges a PR opened in a plan's dispatch: a `pr-merged` phase is then done.
`audit-clean` and `approve` phases end by `plan done` / `plan approve` in this slice.
"""

from __future__ import annotations

from typing import Any

from aipass_git.agents.session import Session
from aipass_git.core.errors import AipassError, RefusedError
from aipass_git.core.names import HUMAN
from aipass_git.core.repo import Repo
from aipass_git.dispatch import dispatcher
from aipass_git.dispatch.runtime import Runtime
from aipass_git.mail.postoffice import PostOffice
from aipass_git.plans import plan as plan_mod
from aipass_git.prs import record
from aipass_git.store.events import EventStore
from aipass_git.store.verify import roster_at, unproven_history


def _brief(doc: dict[str, Any], phase: dict[str, Any]) -> tuple[str, str]:
    subject = f"plan {doc['id'][:12]} / {phase['name']}: {doc['title']}"[:200]
    body = (f"{phase['task']}\n\n"
            f"This is phase {phase['name']!r} of plan {doc['id']} ({doc['title']}); it is done when: {phase['done_when']}.\n"
            f"See the whole plan with: git aipass plan show {doc['id'][:12]}\n")
    return subject, body


def require_proven(store: EventStore, session: Session, plan_id: str) -> None:
    """Under `trust: signed`, a plan whose history holds an event nobody trusted signed
    is not acted on: a forged plan must not dispatch work in the name of whoever advances it."""
    config = session.config
    roster = roster_at(store, config.base_branch)
    if roster.blob_id is None or config.trust != "signed":
        return
    found = unproven_history(store, plan_mod.ref_for(plan_id), roster)
    if found is not None:
        commit, verdict = found
        raise RefusedError(f"plan {plan_id[:12]} is not proven: event {commit[:10]} is {verdict.reason}",
                           f"someone wrote this plan without a trusted key; see: git log --show-signature {plan_mod.ref_for(plan_id)}")


def start_ready(repo: Repo, plan_id: str, session: Session) -> list[str]:
    """Start every ready phase of the plan; returns the names of those this call started."""
    started = []
    with EventStore(repo) as store:
        doc = plan_mod.PlanBook(store).get(plan_id)
        require_proven(store, session, doc["id"])
        for phase in plan_mod.ready(doc):
            ref = plan_mod.ref_for(doc["id"])
            if store.append(ref, plan_mod.started(doc["id"], phase["name"], session.speaker.author)) is None:
                continue  # another process started it
            started.append(phase["name"])
            subject, body = _brief(doc, phase)
            meta = {"plan": doc["id"], "phase": phase["name"]}
            if phase["owner"] == HUMAN:
                with PostOffice(session) as po:
                    [sent] = po.send([f"@{HUMAN}"], subject, body + "\nEnd it with: git aipass plan "
                                     + ("approve" if phase["done_when"] == "approve" else "done")
                                     + f" {doc['id'][:12]} {phase['name']}\n", meta=meta)
                store.append(ref, plan_mod.dispatched(doc["id"], phase["name"], sent["id"], session.speaker.author))
                continue
            try:
                sent = dispatcher.dispatch(repo, phase["owner"], subject, body, meta=meta).message
            except AipassError as exc:
                store.append(ref, plan_mod.finished(doc["id"], phase["name"], "failed", session.speaker.author,
                                                    session.speaker.name, f"could not dispatch: {exc.message}"))
                _tell_owner(session, doc, phase["name"], exc.message)
                continue
            store.append(ref, plan_mod.dispatched(doc["id"], phase["name"], sent["id"], session.speaker.author))
    return started


def advance(repo: Repo, plan_id: str, session: Session) -> dict[str, list[str]]:
    """End the running phases whose dispatch ended, then start what became ready."""
    finished = {e["dispatch"]: e for e in Runtime(repo).events() if e.get("event") == "finished" and e.get("dispatch")}
    done, failed = [], []
    with EventStore(repo) as store:
        doc = plan_mod.PlanBook(store).get(plan_id)
        require_proven(store, session, doc["id"])
        ref = plan_mod.ref_for(doc["id"])
        merged = {pr["dispatch"] for pr in record.PRBook(store).all() if pr["state"] == "merged" and pr.get("dispatch")}
        for phase in doc["phases"]:
            if phase["state"] == "running" and phase["done_when"] == "pr-merged" and phase["dispatch"] in merged:
                store.append(ref, plan_mod.finished(doc["id"], phase["name"], "done", session.speaker.author,
                                                    session.speaker.name))
                done.append(phase["name"])
                continue
            outcome = finished.get(phase["dispatch"]) if phase["state"] == "running" and phase["dispatch"] else None
            if outcome is None:
                continue
            if outcome.get("result") != "ok":
                reason = f"its dispatch {phase['dispatch'][:12]} was {outcome.get('result')}: {outcome.get('reason') or ''}".strip()
                store.append(ref, plan_mod.finished(doc["id"], phase["name"], "failed", session.speaker.author,
                                                    session.speaker.name, reason))
                _tell_owner(session, doc, phase["name"], reason)
                failed.append(phase["name"])
            elif phase["done_when"] == "reply" and outcome.get("replied"):
                store.append(ref, plan_mod.finished(doc["id"], phase["name"], "done", session.speaker.author,
                                                    session.speaker.name))
                done.append(phase["name"])
    return {"done": done, "failed": failed, "started": start_ready(repo, plan_id, session)}


def _tell_owner(session: Session, doc: dict[str, Any], phase: str, reason: str) -> None:
    try:
        with PostOffice(session) as po:
            po.send([f"@{doc['owner']}"], f"plan {doc['id'][:12]} blocked: phase {phase} failed"[:200],
                    f"Plan {doc['id']} ({doc['title']}) is blocked: phase {phase!r} failed.\n\n{reason}\n\n"
                    f"See: git aipass plan show {doc['id'][:12]}\n", meta={"plan": doc["id"], "phase": phase})
    except AipassError as exc:  # the plan records the failure either way; the mail is a courtesy
        Runtime(session.repo).log("plan-owner-not-told", doc["owner"], plan=doc["id"], error=exc.message)
