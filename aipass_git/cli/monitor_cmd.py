"""`git aipass monitor`: watch the team at work."""

from __future__ import annotations

import sys
from typing import Optional

import typer

from aipass_git.cli.app import commands
from aipass_git.core.names import strip_at
from aipass_git.core.repo import discover
from aipass_git.monitor import live

app = commands()


@app.command()
def monitor(
    interval: float = typer.Option(1.0, "--interval", min=0.1, help="Seconds between redraws."),
    agent: Optional[str] = typer.Option(None, "--agent", metavar="@AGENT", help="Only this agent (key a cycles)."),
    once: bool = typer.Option(False, "--once", help="Print one frame as plain text and exit (also when not on a terminal)."),
) -> None:
    """Watch the team at work: agents, problems, recent events, open PRs and plans.

    A live view on a terminal, redrawn every --interval seconds; keys: q quits, a shows the
    next agent only (then all again), r redraws. Piped or with --once: one plain frame."""
    repo = discover()
    who = strip_at(agent) if agent else None
    if once or not sys.stdout.isatty():
        typer.echo(live.once(repo, who), nl=False)
        return
    live.run(repo, interval)
