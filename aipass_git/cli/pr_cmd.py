"""`git aipass pr ...`: open, list, show, merge and close PRs."""

from __future__ import annotations

import sys
from typing import Optional

import typer

from aipass_git.cli.app import commands, group
from aipass_git.cli.output import emit_json, short, table
from aipass_git.core.errors import RefusedError
from aipass_git.core.repo import discover
from aipass_git.agents.session import Session
from aipass_git.prs import conflicts as conflicts_mod
from aipass_git.prs.queue import MergeQueue
from aipass_git.prs.requests import close as close_pr, list_prs, open_pr, show as show_pr
from aipass_git.core.text import for_terminal, plural

app = commands()

pr_app = group("pr", "PRs: agents open them from their desks; the orchestrator or the human merges.")
app.add_typer(pr_app, name="pr")

JSON = typer.Option(False, "--json", help="Print JSON for scripts and agents.")


def _repo():

    return discover()


@pr_app.command("open", context_settings={"ignore_unknown_options": True})
def open_(
    title: Optional[str] = typer.Option(None, "--title", help="One line (default: the first commit's subject)."),
    body: str = typer.Option("", "--body", help="What to look at, what is left."),
    as_json: bool = JSON,
) -> None:
    """Open a PR for this desk's branch, or update the open one after new commits."""
    pr, happened = open_pr(_repo(), title=title, body=body)
    if as_json:
        emit_json({"v": 1, "pr": pr, "happened": happened})
    elif happened == "unchanged":
        typer.echo(f"PR {pr['id'][:12]} is open at {pr['head'][:10]} already; nothing changed")
    else:
        typer.echo(f"PR {pr['id'][:12]} {happened}: {pr['branch']} -> {pr['base']} ({pr['head'][:10]})")


@pr_app.command("list")
def list_(
    state: str = typer.Option("open", "--state", help="open, merged, bounced, closed or all."),
    as_json: bool = JSON,
) -> None:
    """List PRs, oldest first (the order the queue merges them)."""
    prs = list_prs(_repo(), state)
    if as_json:
        emit_json({"v": 1, "prs": prs})
        return
    if not prs:
        typer.echo("no PRs" if state == "all" else f"no {state} PRs")
        return
    rows = [(p["id"][:12], p["state"], f"@{p['agent']}", p["branch"], p["updated"].replace("T", " ")[:16], p["title"]) for p in prs]
    typer.echo(table(["ID", "STATE", "BY", "BRANCH", "UPDATED (UTC)", "TITLE"], rows))


@pr_app.command("show")
def show(pr_id: str = typer.Argument(..., metavar="ID"), as_json: bool = JSON) -> None:
    """A PR: commits, files, audit result, and the memory its branch changes."""
    pr = show_pr(_repo(), pr_id)
    if as_json:
        emit_json({"v": 1, "pr": pr})
        return
    # a body, a bounce's reason, commit subjects and file names come from whoever wrote them
    def echo(text: str) -> None:
        typer.echo(for_terminal(text))

    echo(f"PR {pr['id']}  {pr['state']}  @{pr['agent']}  {pr['branch']} -> {pr['base']}")
    echo(f"title:  {pr['title']}")
    if pr["body"]:
        echo(f"body:   {pr['body']}")
    if pr["merge_commit"]:
        echo(f"merged: {pr['merge_commit'][:10]}")
    if pr["reason"]:
        echo(f"reason: {pr['reason']}")
    for label, items in (("conflicts", pr["conflicts"]), ("findings", pr["findings"]), ("commits", pr["commits"]), ("files", pr["files"])):
        if items:
            echo(f"\n{label}:\n" + "\n".join(f"  {i}" for i in items))
    if pr["audit"]:
        echo(f"\naudit: {plural(pr['audit']['errors'], 'error')} ({pr['audit']['at']})")
    for agent in pr["memory"]:
        echo(f"\nmemory of @{agent['agent']}: {len(agent['learned'])} learned, {len(agent['archived'])} archived, {len(agent['forgot'])} forgotten")
    echo("\nevents:\n" + "\n".join(f"  {e['time'][:19]} {e['event']:<8} {e['by']}" for e in reversed(pr["events"])))


@pr_app.command("merge")
def merge(
    pr_id: Optional[str] = typer.Argument(None, metavar="[ID]"),
    merge_all: bool = typer.Option(False, "--all", help="Merge every open PR, oldest first (the queue)."),
    as_json: bool = JSON,
) -> None:
    """Merge PRs into the base branch under the repo-wide lock (orchestrator or human only).

    A conflict or a failing audit bounces the PR to its author; nothing is merged then.
    Exit 1 when any PR bounced.
    """
    if bool(pr_id) == merge_all:
        raise RefusedError("give one PR id, or --all", "see: git aipass pr list")

    def waiting(holder: dict) -> None:
        sys.stderr.write(f"waiting for the merge lock held by {holder.get('what', '?')} "
                         f"(pid {holder.get('pid', '?')}, since {holder.get('since', '?')})\n")

    queue = MergeQueue(_repo(), on_wait=waiting)
    outcomes = queue.merge_all() if merge_all else [queue.merge(pr_id)]
    if as_json:
        emit_json({"v": 1, "outcomes": [o.__dict__ for o in outcomes]})
    else:
        for o in outcomes:
            extra = f" as {short(o.merge_commit)}" if o.merge_commit else ""
            files = f": {', '.join(o.conflicts)}" if o.conflicts else ""
            typer.echo(f"PR {o.pr[:12]} {o.result}{extra}" + (f" ({o.detail}{files})" if o.detail else ""))
            for line in (o.findings or [])[:FINDINGS_SHOWN]:
                typer.echo(f"  {for_terminal(line)}")
            if len(o.findings or []) > FINDINGS_SHOWN:
                typer.echo(f"  ... and {len(o.findings) - FINDINGS_SHOWN} more: git aipass pr show {o.pr[:12]}")
        if not outcomes:
            typer.echo("no open PRs")
    if any(o.result == "bounced" for o in outcomes):
        raise typer.Exit(1)


FINDINGS_SHOWN = 10  # of a bounced PR's audit errors, under its line; `pr show` has them all


@pr_app.command("close")
def close(pr_id: str = typer.Argument(..., metavar="ID"), as_json: bool = JSON) -> None:
    """Close a PR without merging it (its author, the orchestrator or the human)."""
    pr = close_pr(_repo(), pr_id)
    if as_json:
        emit_json({"v": 1, "pr": pr})
    else:
        typer.echo(f"PR {pr['id'][:12]} closed")


@app.command("conflicts")
def conflicts(
    tell: bool = typer.Option(False, "--tell", help="Mail the agents of each conflict (once per pair and set of files)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing (the post-commit hook runs it with --tell)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts and agents."),
) -> None:
    """Which live desks will not merge cleanly, with each other or with the base branch.

    Computed with `git merge-tree` (no worktree is touched), only for desks that changed
    a file in common. The post-commit hook runs it (--tell) after each commit on a desk;
    `status` and the monitor show what the latest look found. Exit 0 either way: a
    conflict ahead is news, not a failure."""
    repo = discover()
    session = Session.open(repo)
    found = conflicts_mod.find(repo, session.config.base_branch)
    told = conflicts_mod.tell(session, found) if tell else []
    if quiet:
        return
    if as_json:
        emit_json({"v": 1, "conflicts": [c.as_dict() for c in found], "told": [c.as_dict() for c in told]})
        return
    if not found:
        typer.echo("no conflicts ahead")
        return
    typer.echo(table(["DESK", "WITH", "FILES"], [(f"@{c.ours}", c.theirs if c.theirs == session.config.base_branch
                                                  else f"@{c.theirs}", ", ".join(c.files)) for c in found]))
    if tell:
        typer.echo(f"told the agents of {plural(len(told), 'new conflict')}")
