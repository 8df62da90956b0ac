"""`git aipass monitor` and `git aipass report`: watch the team at work, and its figures."""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import typer

from aipass_git.cli.app import commands
from aipass_git.cli.output import emit_json
from aipass_git.core.errors import RefusedError
from aipass_git.core.names import strip_at
from aipass_git.core.repo import discover
from aipass_git.core.text import plural
from aipass_git.monitor import figures, live

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


@app.command()
def report(
    html_file: Optional[Path] = typer.Option(None, "--html", metavar="FILE", help="Write the report as one self-contained HTML page."),
    since: Optional[str] = typer.Option(None, "--since", metavar="DATE", help="Only what happened from this day (YYYY-MM-DD) on."),
    as_json: bool = typer.Option(False, "--json", help="Print the figures as JSON."),
) -> None:
    """The team's figures: dispatches and outcomes, run times, mail and answers, PRs, audits, memory, plans.

    --html FILE writes them as one page with charts (inline SVG: nothing is loaded from the
    network, no JavaScript); --json prints the same figures; with neither, a summary."""
    start = None
    if since is not None:
        try:
            start = datetime.strptime(since, "%Y-%m-%d").replace(tzinfo=timezone.utc)
        except ValueError:
            raise RefusedError(f"--since: {since!r} is not a day", "give it as YYYY-MM-DD, e.g. --since 2026-11-01") from None
    repo = discover()
    found = figures.gather(repo, start)
    if html_file is not None:
        from aipass_git.monitor import report as report_mod  # deferred: matplotlib (about half a second) for --html only

        text = report_mod.render(found, f"aipass-git report: {repo.root.name}")
        try:
            html_file.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise RefusedError(f"--html: cannot write {html_file}: {exc.strerror}", "give a writable path") from None
    if as_json:
        emit_json(found)
        return
    d, m, p = found["dispatches"], found["mail"], found["prs"]
    total = sum(sum(c.values()) for c in d["by_agent"].values())
    typer.echo(f"dispatches: {total} ({', '.join(f'@{a} {sum(c.values())}' for a, c in d['by_agent'].items()) or 'none'}); "
               f"median run {d['run_seconds']['median']} s")
    typer.echo(f"mail: {plural(m['total'], 'message')}, {m['answer_seconds']['count']} answered (median {m['answer_seconds']['median']} s)")
    typer.echo(f"PRs: {', '.join(f'{k} {v}' for k, v in sorted(p['states'].items())) or 'none'}; "
               f"median lead {p['lead_seconds']['median']} s")
    if html_file is not None:
        typer.echo(f"wrote {html_file}")
