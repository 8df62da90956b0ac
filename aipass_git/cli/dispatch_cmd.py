"""Dispatch commands: dispatch, cancel, status, log."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import List, Optional

import typer

from aipass_git.cli.app import commands
from aipass_git.cli.mail_cmd import ALLOW_SECRET, FILE, _body
from aipass_git.cli.output import emit_json, spinner, table
from aipass_git.core import clock
from aipass_git.core.names import strip_at
from aipass_git.core.repo import discover
from aipass_git.claims import claim as claim_mod
from aipass_git.dispatch import dispatcher, path_claims
from aipass_git.dispatch.cancel import cancel as cancel_dispatch
from aipass_git.dispatch.runtime import Runtime
from aipass_git.dispatch.status import agents_status
from aipass_git.core.errors import RefusedError
from aipass_git.core.text import for_terminal, plural
from aipass_git.plans import plan as plan_mod
from aipass_git.prs import conflicts
from aipass_git.store.events import EventStore

app = commands()

JSON = typer.Option(False, "--json", help="Print JSON for scripts and agents.")


@app.command()
def dispatch(
    agent: str = typer.Argument(..., metavar="@AGENT", help="The agent to wake."),
    subject: str = typer.Argument(..., help="The task, in one line."),
    body: Optional[str] = typer.Argument(None, help="Details (or --file, or standard input)."),
    file: Optional[Path] = FILE,
    wait: bool = typer.Option(False, "--wait", help="Block until the run ends: exit 0 if it succeeded, 1 if it was bounced, crashed or cancelled."),
    timeout: Optional[float] = typer.Option(None, "--timeout", metavar="SECONDS", min=0, help="With --wait: stop waiting after this long (exit 124; the run goes on)."),
    act_as: Optional[str] = typer.Option(None, "--as", metavar="@AGENT", help="Send as this agent (human and orchestrator only)."),
    claims: Optional[List[str]] = typer.Option(None, "--claim", metavar="GLOB", help="Claim these paths for the agent before it wakes (repeatable); released when its session ends."),
    if_claimed: str = typer.Option("wait", "--if-claimed", metavar="wait|bounce", help="When someone else holds a claimed path: keep it queued until the claim frees (wait), or send it back (bounce)."),
    claim_ttl: Optional[str] = typer.Option(None, "--claim-ttl", metavar="DURATION", help="How long the claims hold at most, e.g. 90m, 2h (default 4h; the session's end releases them sooner)."),
    allow_secret: bool = ALLOW_SECRET,
    as_json: bool = JSON,
) -> None:
    """Send a task and wake the agent's CLI on its desk, watched by a supervisor.

    A busy agent gets the task queued: one session per agent, the queue drained in order.
    A failed run is retried, started fresh once, then bounced to you with the reason.
    `git aipass @agent "task"` is short for this, with the task as subject and body.
    Stop it with `git aipass cancel @agent [ID]`.
    """
    repo = discover()
    if not claims and (if_claimed != "wait" or claim_ttl):
        raise RefusedError("--if-claimed and --claim-ttl go with --claim", "add --claim GLOB, or leave them out")
    meta = path_claims.meta(claims, if_claimed, claim_mod.ttl(claim_ttl) if claim_ttl else None) if claims else None
    result = dispatcher.dispatch(repo, agent, subject, _body(body, file), act_as=act_as, allow_secret=allow_secret, meta=meta)
    message = result.message
    if wait and result.state.startswith("delivered"):
        raise RefusedError(f"{result.state.split('; ')[1]}: @{message['to']} runs in another clone, so this one cannot wait "
                           f"(the dispatch {message['id']} was delivered)",
                           "run `git aipass sync` here and there; the reply comes back as mail")
    if wait:
        with spinner(f"@{message['to']}: {result.state}") as show:
            result.outcome = dispatcher.wait(repo, message["id"], timeout, agent=message["to"], on_tick=show)
    if as_json:
        emit_json({"v": 1, "dispatch": message, "state": result.state, "outcome": result.outcome})
    else:
        typer.echo(f"dispatched {message['id']} to @{message['to']} ({result.state})")
        if result.outcome:
            o = result.outcome
            typer.echo(f"{o['result']}: " + (o.get("reason") or f"exit {o.get('exit_code')}, {plural(o.get('commits', 0), 'commit')}, {o.get('seconds')} s"))
    if result.outcome and result.outcome["result"] != "ok":
        raise typer.Exit(1)


@app.command()
def cancel(
    agent: str = typer.Argument(..., metavar="@AGENT", help="The agent whose dispatch to stop."),
    dispatch_id: Optional[str] = typer.Argument(None, metavar="[ID]", help="A queued or running dispatch (default: the running one)."),
    act_as: Optional[str] = typer.Option(None, "--as", metavar="@AGENT", help="Cancel as this agent (human and orchestrator only)."),
    as_json: bool = JSON,
) -> None:
    """Stop the running dispatch of an agent, or take back a queued one.

    A running session is stopped with every process it started; a queued task never
    starts. Either way the sender is told, and `dispatch --wait` returns "cancelled".
    Allowed for the dispatch's sender, the human and the orchestrator.
    """
    done = cancel_dispatch(discover(), agent, dispatch_id, act_as=act_as)
    if as_json:
        emit_json({"v": 1, "dispatch": done.dispatch, "running": done.running, "outcome": done.outcome})
        return
    how = "stopped while running" if done.running else "taken out of the queue"
    typer.echo(f"cancelled {done.dispatch['id']} to @{done.dispatch['to']}: {how}; @{done.dispatch['from']} was told")


@app.command()
def status(as_json: bool = JSON,
           watch: Optional[float] = typer.Option(None, "--watch", metavar="SECONDS", min=0.5,
                                                 help="Redraw every SECONDS until Ctrl-C (a compact `monitor`).")) -> None:
    """What every agent is doing: idle, queued, starting, running (attempt N of M), backoff.

    A supervisor that died is noticed here: its processes are killed, its dispatch is
    retried or bounced, and its queue goes on.
    """
    repo = discover()
    if watch is not None:
        if as_json:
            raise RefusedError("--watch draws for people; --json prints once", "drop one of them")
        try:
            while True:
                if sys.stdout.isatty():
                    typer.echo("\x1b[H\x1b[2J", nl=False)  # home and clear: each frame in place
                typer.echo(f"{clock.utc_now()}  (every {watch:g} s; Ctrl-C stops)")
                _print_status(agents_status(repo), _open_plans(repo), conflicts.last(repo))
                time.sleep(watch)
        except KeyboardInterrupt:
            return
    rows = agents_status(repo)
    plans = _open_plans(repo)
    ahead = conflicts.last(repo)
    if as_json:
        emit_json({"v": 1, "agents": rows, "plans": plans, "conflicts": ahead.get("conflicts", []),
                   "conflicts_at": ahead.get("at")})
        return
    _print_status(rows, plans, ahead)


def _print_status(rows: list[dict], plans: list[dict], ahead: dict | None = None) -> None:
    typer.echo(table(
        ["AGENT", "STATE", "ATTEMPT", "RUN TIME", "BACKOFF", "QUEUED", "DISPATCH", "SUBJECT"],
        [(r["agent"], r["state"] + (f" ({', '.join(sorted({e['clone'] for e in r['elsewhere']}))})" if r["state"] == "elsewhere" else "")
          + (f" ({r['claim_wait']['glob']} held by @{r['claim_wait']['holder']})" if r["state"] == "claim-wait" else ""),
          f"{r['attempt']}/{r['attempts']}" if r["attempt"] else "-",
          _seconds(r["run_seconds"]), _seconds(r["backoff_seconds"]), r["queued"], r["dispatch"] or "-",
          r["subject"] or "-") for r in rows],
    ))
    if plans:
        typer.echo("")
        typer.echo(table(["PLAN", "STATE", "DONE", "RUNNING", "READY", "TITLE"],
                         [(p["id"][:12], p["state"], f"{p['done']}/{p['phases']}", ", ".join(p["running"]) or "-",
                           ", ".join(p["ready"]) or "-", for_terminal(p["title"])) for p in plans]))
    if ahead and ahead.get("conflicts"):
        typer.echo("")
        typer.echo(f"conflicts ahead (as of {ahead['at']}; see: git aipass conflicts):")
        for c in ahead["conflicts"]:
            typer.echo(f"  {' and '.join(c['agents'])}: {', '.join(for_terminal(f) for f in c['files'])}")


def _open_plans(repo) -> list[dict]:
    """Open and blocked plans, oldest first: how far each has got."""
    with EventStore(repo) as store:
        docs = [d for d in plan_mod.PlanBook(store).all() if d["state"] in ("open", "blocked")]
    return [{"id": d["id"], "title": d["title"], "state": d["state"], "phases": len(d["phases"]),
             "done": sum(p["state"] == "done" for p in d["phases"]),
             "running": [p["name"] for p in d["phases"] if p["state"] == "running"],
             "ready": [p["name"] for p in plan_mod.ready(d)]} for d in sorted(docs, key=lambda d: d["id"])]


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    minutes, seconds = divmod(int(value), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


@app.command("log")
def event_log(
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new events as they come (Ctrl-C stops)."),
    agent: Optional[str] = typer.Option(None, "--agent", metavar="@AGENT", help="Only this agent's events."),
    limit: Optional[int] = typer.Option(None, "-n", min=1, help="Only the last N events."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line, as stored."),
) -> None:
    """The event log of wakes and runs (events.jsonl in the git common dir)."""
    runtime = Runtime(discover())
    who = strip_at(agent) if agent else None
    events = [e for e in runtime.events() if who is None or e.get("agent") == who]
    for event in events[-limit:] if limit else events:
        typer.echo(_event_line(event, as_json))
    if not follow:
        return
    for event in runtime.follow(from_end=True, poll=0.2):
        if who is None or event.get("agent") == who:
            typer.echo(_event_line(event, as_json))


def _event_line(event: dict, as_json: bool) -> str:
    if as_json:
        return json.dumps(event, ensure_ascii=False, sort_keys=True)
    rest = " ".join(f"{k}={v}" for k, v in sorted(event.items()) if k not in ("time", "event", "agent"))
    # a run's error lines and a task's words are shown, never acted on by the terminal
    return for_terminal(f"{event.get('time', '?')}  {event.get('event', '?'):<10} @{event.get('agent', '-'):<12} {rest}")
