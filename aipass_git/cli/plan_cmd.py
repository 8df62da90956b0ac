"""`git aipass plan ...`: plans made from templates, their phases as a graph, what is ready."""

from __future__ import annotations

from typing import List, Optional

import typer

from aipass_git.cli.app import commands, group
from aipass_git.cli.output import emit_json, table
from aipass_git.core import secrets
from aipass_git.core.errors import RefusedError
from aipass_git.core.names import HUMAN
from aipass_git.core.repo import discover
from aipass_git.core.text import for_terminal, plural
from aipass_git.dispatch.runtime import Runtime
from aipass_git.plans import plan as plan_mod, templates as templates_mod
from aipass_git.store.events import EventStore

app = commands()

plan_app = group("plan", "Plans: phases as events, made from templates; see what is ready to start.")
app.add_typer(plan_app, name="plan")

JSON = typer.Option(False, "--json", help="Print JSON for scripts and agents.")


def _flow():
    from aipass_git.flow import advance  # deferred: ~40 ms of dispatch, mail and audit that show/list/ready never use

    return advance


def _session(repo):
    from aipass_git.agents.session import Session  # deferred: ~30 ms (passports, keys) that show/list/ready never use

    return Session.open(repo)


def _sets(raw: list[str]) -> dict[str, str]:
    out = {}
    for item in raw:
        key, eq, value = item.partition("=")
        if not eq or not key.strip() or not value.strip():
            raise RefusedError(f"--set {item!r} is not KEY=VALUE", "e.g. --set agent=@api")
        out[key.strip()] = value.strip()
    return out


@plan_app.command("new")
def new(
    title: str = typer.Argument(..., help="One line: what the plan achieves."),
    template: str = typer.Option("build", "--template", "-t", help="A template (see: git aipass plan templates)."),
    sets: Optional[List[str]] = typer.Option(None, "--set", metavar="KEY=VALUE", help="A template parameter (repeatable)."),
    owner: Optional[str] = typer.Option(None, "--owner", metavar="@AGENT", help="Who hears about failures (default: the orchestrator)."),
    no_start: bool = typer.Option(False, "--no-start", help="Only record the plan; start it later with `plan start`."),
    as_json: bool = JSON,
) -> None:
    """Make a plan from a template, record it on refs/aipass/plans/<id>, and start it.

    Its ready phases are dispatched to their owners at once; each phase that ends starts
    the ones it unblocks (see `plan advance`)."""
    repo = discover()
    doc, started = _flow().make(_session(repo), template, title, _sets(sets or []), owner=owner, start=not no_start)
    if as_json:
        emit_json({"v": 1, "plan": doc, "started": started})
        return
    typer.echo(f"plan {doc['id']} ({doc['template']}): {for_terminal(doc['title'])}, {plural(len(doc['phases']), 'phase')}")
    if started:
        typer.echo("started: " + ", ".join(started))


@plan_app.command("show")
def show(
    plan_id: str = typer.Argument(..., metavar="ID", help="A plan (any unique prefix)."),
    md: bool = typer.Option(False, "--md", help="The Markdown view (plan.md on the ref)."),
    as_json: bool = JSON,
) -> None:
    """A plan's phases with their states and dependencies."""
    with EventStore(discover()) as store:
        doc = plan_mod.PlanBook(store).get(plan_id)
    if as_json:
        emit_json({"v": 1, "plan": doc, "ready": [p["name"] for p in plan_mod.ready(doc)]})
    elif md:
        typer.echo(for_terminal(plan_mod.render(doc)), nl=False)
    else:
        typer.echo(f"{doc['id']}  {for_terminal(doc['title'])}  ({doc['template']}, {doc['state']}, owner @{doc['owner']})")
        ready = {p["name"] for p in plan_mod.ready(doc)}
        typer.echo(table(["PHASE", "STATE", "OWNER", "AFTER", "DONE WHEN", "TASK"],
                         [(p["name"], p["state"] + (" (ready)" if p["name"] in ready else ""), f"@{p['owner']}",
                           ", ".join(p["depends_on"]) or "-", p["done_when"], for_terminal(p["task"]))
                          for p in doc["phases"]]))


@plan_app.command("list")
def list_(include_all: bool = typer.Option(False, "--all", "-a", help="Closed and cancelled plans too."),
          as_json: bool = JSON) -> None:
    """Plans, newest first: open ones, or all."""
    with EventStore(discover()) as store:
        docs = plan_mod.PlanBook(store).all()
    docs = [d for d in docs if include_all or d["state"] in ("open", "blocked")]
    docs.sort(key=lambda d: d["id"], reverse=True)
    if as_json:
        emit_json({"v": 1, "plans": docs})
        return
    if not docs:
        typer.echo("no plans" + ("" if include_all else " open (add --all for closed ones)"))
        return
    typer.echo(table(["ID", "STATE", "TEMPLATE", "DONE", "TITLE"],
                     [(d["id"][:12], d["state"], d["template"],
                       f"{sum(p['state'] == 'done' for p in d['phases'])}/{len(d['phases'])}", for_terminal(d["title"]))
                      for d in docs]))


@plan_app.command("ready")
def ready(as_json: bool = JSON) -> None:
    """Phases that can start now: their plan is open, what they depend on is done, and
    their owner is idle (the human's phases are always listed)."""
    repo = discover()
    runtime = Runtime(repo)
    with EventStore(repo) as store:
        docs = plan_mod.PlanBook(store).all()
    busy: dict[str, bool] = {}
    rows = []
    for doc in sorted(docs, key=lambda d: d["id"]):
        for phase in plan_mod.ready(doc):
            owner = phase["owner"]
            if owner != HUMAN and owner not in busy:
                busy[owner] = runtime.at_work(owner)
            if busy.get(owner):
                continue
            rows.append({"plan": doc["id"], "title": doc["title"], "phase": phase["name"], "owner": owner,
                         "task": phase["task"], "done_when": phase["done_when"]})
    if as_json:
        emit_json({"v": 1, "ready": rows})
        return
    if not rows:
        typer.echo("nothing ready")
        return
    typer.echo(table(["PLAN", "PHASE", "OWNER", "DONE WHEN", "TASK"],
                     [(r["plan"][:12], r["phase"], f"@{r['owner']}", r["done_when"], for_terminal(r["task"])) for r in rows]))


@plan_app.command("start")
def start(plan_id: str = typer.Argument(..., metavar="ID"), as_json: bool = JSON) -> None:
    """Start the plan's ready phases (each once, whoever else tries at the same time)."""
    repo = discover()
    with EventStore(repo) as store:
        doc = plan_mod.PlanBook(store).get(plan_id)
    started = _flow().start_ready(repo, doc["id"], _session(repo))
    emit_json({"v": 1, "started": started}) if as_json else typer.echo(
        "started: " + ", ".join(started) if started else "nothing ready to start")


@plan_app.command("advance")
def advance(plan_id: Optional[str] = typer.Argument(None, metavar="[ID]", help="A plan; without it, every open plan."),
            as_json: bool = JSON) -> None:
    """End the phases whose rule holds or that failed, then start what became ready.

    A phase is done on a reply, a merged PR (the run's open PRs go through the merge queue
    first) or a clean audit of its owner's desk, as its rule says; it fails when its
    dispatch bounced or crashed, the audit found errors, or its timeout passed. The
    supervisor and the merge queue run this when a plan's dispatch or PR ends; without an
    ID it looks at every open plan (run it on a schedule for timeouts)."""
    repo = discover()
    session = _session(repo)
    if plan_id is None:
        moved = _flow().advance_all(repo, session)
        if as_json:
            emit_json({"v": 1, "plans": moved})
            return
        for pid, changes in moved.items():
            said = "; ".join(f"{what}: {', '.join(phases)}" for what, phases in changes.items() if phases)
            if said:
                typer.echo(f"{pid[:12]}  {said}")
        return
    with EventStore(repo) as store:
        doc = plan_mod.PlanBook(store).get(plan_id)
    moved_one = _flow().advance(repo, doc["id"], session)
    if as_json:
        emit_json({"v": 1, **moved_one})
        return
    for what, phases in moved_one.items():
        if phases:
            typer.echo(f"{what}: {', '.join(phases)}")


def _end(plan_id: str, phase: str, state: str, reason: str = "", *, approve: bool = False) -> None:
    repo = discover()
    started = _flow().end_phase(repo, _session(repo), plan_id, phase, state, reason, approve=approve)
    typer.echo(f"{phase}: {state}" + (f"; started: {', '.join(started)}" if started else ""))


@plan_app.command("done")
def done(plan_id: str = typer.Argument(..., metavar="ID"), phase: str = typer.Argument(..., metavar="PHASE")) -> None:
    """Mark a running phase done (its owner, the human or the orchestrator) and start what it unblocks."""
    _end(plan_id, phase, "done")


@plan_app.command("approve")
def approve(plan_id: str = typer.Argument(..., metavar="ID"), phase: str = typer.Argument(..., metavar="PHASE")) -> None:
    """Approve a running phase (the human only) and start what it unblocks."""
    _end(plan_id, phase, "done", approve=True)


@plan_app.command("fail")
def fail(plan_id: str = typer.Argument(..., metavar="ID"), phase: str = typer.Argument(..., metavar="PHASE"),
         reason: str = typer.Argument(..., help="Why.")) -> None:
    """Mark a running phase failed: the plan is blocked."""
    _end(plan_id, phase, "failed", reason.strip())


@plan_app.command("retry")
def retry(plan_id: str = typer.Argument(..., metavar="ID"), phase: str = typer.Argument(..., metavar="PHASE")) -> None:
    """Run a failed phase again (the human, the orchestrator or the plan's owner).

    It waits as its next attempt, the plan is open again when nothing else failed, and the
    phase starts (dispatched anew) once its dependencies allow."""
    repo = discover()
    started = _flow().retry_phase(repo, _session(repo), plan_id, phase)
    typer.echo(f"{phase}: retried" + (f"; started: {', '.join(started)}" if started else ""))


def _finish_plan(plan_id: str, state: str) -> None:
    repo = discover()
    doc = _flow().end_plan(repo, _session(repo), plan_id, state)
    typer.echo(f"plan {doc['id'][:12]}: {state}")


@plan_app.command("close")
def close(plan_id: str = typer.Argument(..., metavar="ID")) -> None:
    """Close a plan (a living one too); its ref stays as history.

    Its summary (phases, outcomes, PRs, time taken) goes to the orchestrator's memory
    archive, where `memory search` finds it."""
    _finish_plan(plan_id, "closed")


@plan_app.command("cancel")
def cancel(plan_id: str = typer.Argument(..., metavar="ID")) -> None:
    """Cancel a plan: nothing more starts; its ref stays as history."""
    _finish_plan(plan_id, "cancelled")


@plan_app.command("note")
def note(plan_id: str = typer.Argument(..., metavar="ID"), text: str = typer.Argument(..., help="The note.")) -> None:
    """Add a note to a plan (recorded as an event, shown in plan.md)."""
    repo = discover()
    session = _session(repo)
    text = text.strip()
    if not text:
        raise RefusedError("the note is empty", "say something")
    secrets.check("the note", text)
    with EventStore(repo) as store:
        doc = plan_mod.PlanBook(store).get(plan_id)
        store.append(plan_mod.ref_for(doc["id"]), plan_mod.note(doc["id"], session.speaker.name, text,
                                                                   session.speaker.author))
    typer.echo(f"noted on plan {doc['id'][:12]}")


@plan_app.command("log")
def log(plan_id: str = typer.Argument(..., metavar="ID"), as_json: bool = JSON) -> None:
    """A plan's event history, newest first (git log of its ref)."""
    with EventStore(discover()) as store:
        doc = plan_mod.PlanBook(store).get(plan_id)
        entries = store.history(plan_mod.ref_for(doc["id"]))
    if as_json:
        emit_json({"v": 1, "events": [e.__dict__ for e in entries]})
        return
    for e in entries:
        typer.echo(f"{e.commit[:10]} {e.time} {for_terminal(e.author)}: {for_terminal(e.subject)}")


@plan_app.command("templates")
def templates(as_json: bool = JSON) -> None:
    """The plan templates: shipped ones and the project's (.aipass/plan-templates/)."""
    found = templates_mod.available(discover())
    if as_json:
        emit_json({"v": 1, "templates": [{"name": t.name, "source": t.source, "description": t.doc["description"],
                                          "params": t.params, "phases": len(t.doc["phases"])} for t in found.values()]})
        return
    typer.echo(table(["TEMPLATE", "PHASES", "PARAMETERS", "DESCRIPTION"],
                     [(t.name, len(t.doc["phases"]), ", ".join(t.params) or "-", t.doc["description"]) for t in found.values()],
                     max_width=70))
