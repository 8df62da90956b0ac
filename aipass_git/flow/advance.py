"""Moving plans forward: start what is ready, end what finished, with no one to ask.

`start_ready` starts each ready phase: a `phase-started` event first (a compare-and-swap
on the plan's ref: of two processes starting one phase, one writes it), then the task is
dispatched to the phase's owner with the plan and phase in the dispatch's meta, and the
dispatch id is recorded; a human's phase is announced by mail instead.

`advance` looks at the running phases and ends those whose rule now holds:

- `reply`: the dispatch finished ok and the owner replied;
- `audit-clean`: the dispatch finished ok and the audit of the owner's desk branch (what
  it changed since the base branch, by the merge queue's gate) finds no error;
- `pr-merged`: a PR opened in the phase's dispatch is merged; when the dispatch ended
  ok, its open PRs go through the merge queue at once, as the orchestrator.

A dispatch that was bounced, crashed or cancelled, an audit with errors, a run that
opened no PR or whose PRs all bounced, or a phase past its timeout fails the phase,
which blocks the plan and tells its owner. Then whatever became ready starts, and a
plan that closed is remembered (summary.py). The supervisor runs `plan advance` when a
plan's dispatch ends and the merge queue when it merges a plan's PR (processes of their
own: both sit in lower layers). `approve` phases end by
`plan approve`; any phase may be ended by `plan done` / `plan fail` (`end_phase`), and a
failed one run again by `plan retry`.
"""

from __future__ import annotations

from typing import Any

from aipass_git.agents import policy
from aipass_git.agents.desk import branch_for
from aipass_git.agents.session import Session
from aipass_git.audit.runner import audit_merge
from aipass_git.core import clock, git, secrets
from aipass_git.core.errors import AipassError, RefusedError
from aipass_git.core.names import HUMAN, strip_at
from aipass_git.core.program import kick_triggers
from aipass_git.core.repo import Repo
from aipass_git.dispatch import dispatcher, path_claims
from aipass_git.dispatch.runtime import Runtime
from aipass_git.flow import summary
from aipass_git.mail import message
from aipass_git.mail.postoffice import PostOffice
from aipass_git.plans import plan as plan_mod, templates as templates_mod
from aipass_git.prs import record
from aipass_git.prs.queue import MergeQueue, merge_unproven
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


def make(session: Session, template: str, title: str, params: dict[str, str], *, owner: str | None = None,
         start: bool = True) -> tuple[dict[str, Any], list[str]]:
    """A plan from TEMPLATE filled with TITLE and PARAMS, recorded on its ref and (with
    START) started; returns (the plan, the phases started). OWNER hears of failures
    (default: the orchestrator)."""
    repo = session.repo
    found = templates_mod.available(repo)
    if template not in found:
        raise RefusedError(f"no plan template {template!r}", f"templates: {', '.join(sorted(found))}")
    tpl = found[template]
    title = message.check_subject(title, 200)  # one line of plain text, as a mail subject
    secrets.check("the plan's title", title)
    phases = templates_mod.fill(tpl, title, params)
    for phase in phases:
        if phase["owner"] != HUMAN:
            phase["owner"] = session.registry.resolve(phase["owner"]).name  # an active agent, or refused
    chosen = strip_at(owner) if owner else session.config.orchestrator
    if chosen != HUMAN:
        session.registry.resolve(chosen)
    doc = plan_mod.new(title=title, template=tpl.name, owner=chosen, created_by=session.speaker.name,
                       living=bool(tpl.doc.get("living")), phases=phases)
    with EventStore(repo) as store:
        store.append(plan_mod.ref_for(doc["id"]), plan_mod.created(doc, session.speaker.author))
    return doc, start_ready(repo, doc["id"], session) if start else []


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
            if phase.get("claims"):  # claimed for the owner before it wakes; queued while someone else holds them
                meta.update(path_claims.meta(phase["claims"]))
            try:
                sent = dispatcher.dispatch(repo, phase["owner"], subject, body, meta=meta).message
            except AipassError as exc:
                store.append(ref, plan_mod.finished(doc["id"], phase["name"], "failed", session.speaker.author,
                                                    session.speaker.name, f"could not dispatch: {exc.message}"))
                _tell_owner(session, doc, phase["name"], exc.message)
                continue
            store.append(ref, plan_mod.dispatched(doc["id"], phase["name"], sent["id"], session.speaker.author))
    return started


def _finished(repo: Repo) -> dict[str, dict[str, Any]]:
    """Dispatch id -> its `finished` event in this clone's runtime log."""
    return {e["dispatch"]: e for e in Runtime(repo).events() if e.get("event") == "finished" and e.get("dispatch")}


def advance(repo: Repo, plan_id: str, session: Session,
            finished: dict[str, dict[str, Any]] | None = None) -> dict[str, list[str]]:
    """End the running phases whose rule holds or whose dispatch failed, then start what
    became ready; remember the plan when it closed."""
    finished = _finished(repo) if finished is None else finished
    now = clock.parse(clock.utc_now())
    done, failed = [], []
    with EventStore(repo) as store:
        doc = plan_mod.PlanBook(store).get(plan_id)
        require_proven(store, session, doc["id"])
        ref = plan_mod.ref_for(doc["id"])
        prs = [pr for pr in record.PRBook(store).all() if pr.get("dispatch")]
        for phase in doc["phases"]:
            if phase["state"] != "running":
                continue
            outcome = finished.get(phase["dispatch"] or "")
            mine = [p for p in prs if p["dispatch"] == phase["dispatch"]]
            # a record that says merged counts when a signature proves the merge (trust: signed)
            doubted = {p["id"]: why for p in mine if phase["done_when"] == "pr-merged" and p["state"] == "merged"
                       and (why := merge_unproven(store, session.config, p)) is not None}
            if phase["done_when"] == "pr-merged" and any(p["state"] == "merged" and p["id"] not in doubted for p in mine):
                verdict = "done", ""  # merged by whoever, while the run went on or after it
            elif phase["done_when"] == "pr-merged" and outcome is not None and outcome.get("result") == "ok":
                verdict = _merge_phase_prs(repo, session, phase, mine, doubted)
            else:
                verdict = _verdict(repo, session, phase, outcome, now)
            if verdict is None:
                continue
            state, reason = verdict
            if store.append(ref, plan_mod.finished(doc["id"], phase["name"], state, session.speaker.author,
                                                   session.speaker.name, reason)) is None:
                continue  # another process ended it first
            (done if state == "done" else failed).append(phase["name"])
            if state == "failed":
                _tell_owner(session, doc, phase["name"], reason)
    started = start_ready(repo, plan_id, session)
    summary.remember(session, plan_id)
    if done or failed:
        kick_triggers(repo.root, repo.runtime_dir)  # plan.phase-done / phase-failed rules
    return {"done": done, "failed": failed, "started": started}


def _verdict(repo: Repo, session: Session, phase: dict[str, Any], outcome: dict[str, Any] | None,
             now) -> tuple[str, str] | None:
    """(done | failed, reason) for a running phase whose end is known, else None."""
    if outcome is not None and outcome.get("result") != "ok":
        return "failed", f"its dispatch {phase['dispatch'][:12]} was {outcome.get('result')}: {outcome.get('reason') or ''}".strip()
    if outcome is not None and phase["done_when"] == "reply" and outcome.get("replied"):
        return "done", ""
    if outcome is not None and phase["done_when"] == "audit-clean":
        errors = audit_desk(repo, session, phase["owner"])
        if not errors:
            return "done", ""
        more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
        return "failed", f"the audit of {branch_for(phase['owner'])} found: " + "; ".join(errors[:3]) + more
    if plan_mod.overdue(phase, now):
        return "failed", f"it ran past its timeout of {phase['timeout_minutes']} min"
    return None


def _merge_phase_prs(repo: Repo, session: Session, phase: dict[str, Any],
                     prs: list[dict[str, Any]], doubted: dict[str, str]) -> tuple[str, str] | None:
    """A `pr-merged` phase whose dispatch ended ok and none of whose PRs is merged yet: the
    open ones go through the merge queue now, as the orchestrator (who
    merges agents' work; the queue's conflict check and audit are the gate). Done when one
    merges; failed when the run opened none or every one bounced; None (still running) when the queue cannot
    merge now (a dirty base worktree, a held lock): whoever merges them later advances it."""
    open_prs = [pr for pr in prs if pr["state"] == "open"]
    if not prs:
        return "failed", f"its dispatch {phase['dispatch'][:12]} ended without opening a PR"
    bounced = [f"PR {pr['id'][:12]} says {pr['state']}, but {doubted[pr['id']]}" if pr["id"] in doubted
               else f"PR {pr['id'][:12]} {pr['state']}" for pr in prs if pr["state"] != "open"]
    try:
        queue = MergeQueue(repo, session=_orchestrator(session))
        for pr in open_prs:
            outcome = queue.merge(pr["id"])
            if outcome.result == "merged":
                return "done", ""
            bounced.append(f"PR {pr['id'][:12]} {outcome.result}: {outcome.detail}")
    except AipassError as exc:
        Runtime(repo).log("plan-merge-waits", phase["owner"], dispatch=phase["dispatch"], error=exc.message)
        return None
    return "failed", "; ".join(bounced)


def _orchestrator(session: Session) -> Session:
    """The orchestrator's session, who advances plans and merges their PRs."""
    return session if session.speaker.name == session.config.orchestrator else Session.of_orchestrator(session.repo)


def audit_desk(repo: Repo, session: Session, agent: str) -> list[str]:
    """Errors of what AGENT's desk branch changed since it left the base branch, by the
    merge queue's gate (an agent whose desk is gone changed nothing: no errors)."""
    tip = git.resolve_commit(repo.root, branch_for(agent))
    base = git.resolve_commit(repo.root, session.config.base_branch)
    if tip is None or base is None:
        return []
    return audit_merge(repo, tip, git.merge_base(repo.root, base, tip) or base)


def advance_all(repo: Repo, session: Session) -> dict[str, dict[str, list[str]]]:
    """`advance` every open plan (what ended unseen, phases past their timeout); a plan
    that cannot be advanced (not proven, unreadable) is reported, the others go on."""
    with EventStore(repo) as store:
        docs, unreadable = plan_mod.PlanBook(store).readable()
    for plan_id, why in unreadable.items():
        Runtime(repo).log("plan-unreadable", None, plan=plan_id, error=why)
    moved, finished = {}, _finished(repo)
    for doc in docs:
        if doc["state"] == "open" or (doc["state"] == "closed" and not doc.get("remembered")):
            try:
                moved[doc["id"]] = advance(repo, doc["id"], session, finished)
            except AipassError as exc:
                Runtime(repo).log("plan-not-advanced", None, plan=doc["id"], error=exc.message)
    return moved


def end_phase(repo: Repo, session: Session, plan_id: str, phase: str, state: str, reason: str = "",
              *, approve: bool = False) -> list[str]:
    """A person (or agent) ends a running phase done or failed; returns what then started."""
    with EventStore(repo) as store:
        doc = plan_mod.PlanBook(store).get(plan_id)
        current = plan_mod.phase_of(doc, phase)
        policy.require_may_end_phase(session.speaker.name, current["owner"], session.config.orchestrator, approve=approve)
        if current["state"] != "running":
            raise RefusedError(f"phase {phase!r} is {current['state']}, not running",
                               f"see: git aipass plan show {doc['id'][:12]}")
        store.append(plan_mod.ref_for(doc["id"]), plan_mod.finished(doc["id"], phase, state, session.speaker.author,
                                                                      session.speaker.name, reason))
    started = start_ready(repo, doc["id"], session) if state == "done" else []
    summary.remember(session, doc["id"])
    kick_triggers(repo.root, repo.runtime_dir)
    return started


def retry_phase(repo: Repo, session: Session, plan_id: str, phase: str) -> list[str]:
    """Run a failed phase again (the human, the orchestrator or the plan's owner): it waits
    as its next attempt, the plan opens when nothing else failed, and what is ready starts."""
    with EventStore(repo) as store:
        doc = plan_mod.PlanBook(store).get(plan_id)
        current = plan_mod.phase_of(doc, phase)
        policy.require_may_retry_phase(session.speaker.name, doc["owner"], session.config.orchestrator, doc["id"])
        if current["state"] != "failed":
            raise RefusedError(f"phase {phase!r} is {current['state']}, not failed",
                               f"see: git aipass plan show {doc['id'][:12]}")
        store.append(plan_mod.ref_for(doc["id"]), plan_mod.retried(doc["id"], phase, session.speaker.author,
                                                                     session.speaker.name))
    return start_ready(repo, doc["id"], session)


def end_plan(repo: Repo, session: Session, plan_id: str, state: str) -> dict[str, Any]:
    """Close or cancel a plan (the human or the orchestrator); a closed one is remembered."""
    policy.require_may_end_plan(session.speaker.name, session.config.orchestrator,
                                {"closed": "close", "cancelled": "cancel"}[state])
    with EventStore(repo) as store:
        doc = plan_mod.PlanBook(store).get(plan_id)
        store.append(plan_mod.ref_for(doc["id"]), plan_mod.ended(doc["id"], state, session.speaker.author))
    summary.remember(session, doc["id"])
    return doc


def _tell_owner(session: Session, doc: dict[str, Any], phase: str, reason: str) -> None:
    try:
        with PostOffice(session) as po:
            po.send([f"@{doc['owner']}"], f"plan {doc['id'][:12]} blocked: phase {phase} failed"[:200],
                    f"Plan {doc['id']} ({doc['title']}) is blocked: phase {phase!r} failed.\n\n{reason}\n\n"
                    f"See: git aipass plan show {doc['id'][:12]}\n", meta={"plan": doc["id"], "phase": phase})
    except AipassError as exc:  # the plan records the failure either way; the mail is a courtesy
        Runtime(session.repo).log("plan-owner-not-told", doc["owner"], plan=doc["id"], error=exc.message)
