"""`git aipass sync` and `git aipass clone`: mail and PRs through any git remote."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

from aipass_git.cli.app import commands
from aipass_git.cli.output import emit_json, short, spinner
from aipass_git.core.errors import AipassError, RefusedError
from aipass_git.core.repo import discover
from aipass_git.core.text import for_terminal, plural
from aipass_git.setup import clone as clone_mod
from aipass_git.store import remote as remote_mod
from aipass_git.sync import cycle

app = commands()

JSON = typer.Option(False, "--json", help="Print JSON for scripts and agents.")
LISTED = 20


def _short(ref: str) -> str:
    return ref[len(remote_mod.LOCAL):]


def _say(synced: cycle.Synced) -> None:
    report = synced.report
    if synced.set_up:
        typer.echo(f"set up: fetches from {report.remote} now bring refs/aipass/* (into refs/aipass-sync/{report.remote}/)")
    came, went = sorted(set(report.came_in)), sorted(set(report.went_out))
    if not (came or went or report.merged or report.apart):
        typer.echo(f"in sync with {report.remote}: nothing to exchange")
    _listed("in:    ", [_short(ref) for ref in came])
    _listed("merged:", [f"{_short(ref)} ({for_terminal(what)})" for ref, what in sorted(report.merged.items())])
    _listed("out:   ", [_short(ref) for ref in went])
    for ref, why in sorted(report.apart.items()):
        typer.echo(f"apart:  {_short(ref)}: {for_terminal(why)}", err=True)
    for agent in synced.woken:
        typer.echo(f"woke:   @{agent} (a dispatch came in)")
    if came or went or report.merged:
        typer.echo(f"{report.remote}: {plural(len(came), 'ref')} in, {plural(len(report.merged), 'merge')}, "
                   f"{plural(len(went), 'ref')} out")


def _listed(label: str, lines: list[str]) -> None:
    """A line per ref, up to LISTED; past that a count (a sync may move a thousand)."""
    for line in lines[:LISTED]:
        typer.echo(f"{label} {line}")
    if len(lines) > LISTED:
        typer.echo(f"{label} ... and {len(lines) - LISTED} more (--json lists them all)")


@app.command()
def sync(
    remote: Optional[str] = typer.Argument(None, metavar="[REMOTE]", help="Default: the branch's remote, else origin."),
    watch: Optional[float] = typer.Option(None, "--watch", metavar="SECONDS", min=1.0,
                                          help="Sync again every SECONDS until interrupted (Ctrl-C)."),
    as_json: bool = JSON,
) -> None:
    """Exchange mail and PRs with a remote: fetch, merge what diverged, push; never forced.

    Fetches refs/aipass/* into refs/aipass-sync/REMOTE/ in one transaction, moves each local
    mailbox and PR ref forward, merges the ones both sides wrote to (every message kept, each
    status the furthest along, a merge commit with both histories), and pushes without force,
    retrying when another clone pushed first. The first sync sets up the remote's fetch
    refspec and reflogs for refs/aipass/*. Agents here with a dispatch that came in are woken.
    Exit 1 when some refs could not be brought in line (listed as "apart").
    """
    repo = discover()
    while True:
        try:
            with spinner(f"syncing with {remote or 'the remote'}: fetch, merge, push"):
                synced = cycle.sync(repo, remote)
        except RefusedError:
            raise  # a wrong remote stays wrong: --watch retries what the network may fix, not that
        except AipassError as exc:
            if watch is None:
                raise
            typer.echo(f"error: {exc.message}; trying again in {watch:g} s", err=True)
        else:
            if as_json:
                emit_json(synced.as_json())
            else:
                _say(synced)
            if watch is None:
                if synced.report.apart:
                    raise typer.Exit(1)
                return
        try:
            time.sleep(watch)
        except KeyboardInterrupt:
            return


@app.command()
def clone(
    url: str = typer.Argument(..., metavar="URL", help="What `git clone` takes."),
    directory: Optional[Path] = typer.Argument(None, metavar="[DIR]", help="Default: the name at the end of URL."),
    no_hooks: bool = typer.Option(False, "--no-hooks", help="Do not install the git hooks."),
    as_json: bool = JSON,
) -> None:
    """Clone a repository and join its agents: git clone, set-up of this clone, one sync.

    After it, `inbox`, `pr list` and `status` show what the other clones wrote.
    """
    done = clone_mod.clone(url, directory, hooks=not no_hooks)
    if as_json:
        emit_json({"path": str(done.path), "aipass": done.init is not None, **done.synced.as_json()})
        return
    typer.echo(f"cloned into {done.path.name}")
    if done.init is not None and done.init.commit:
        typer.echo(f"committed a signing key for you in this clone ({short(done.init.commit)}): push it, so that "
                   "the other clones trust what you write here")
    _say(done.synced)
    if done.init is None:
        typer.echo("this repository has no aipass-git set-up yet; next: git aipass init")
