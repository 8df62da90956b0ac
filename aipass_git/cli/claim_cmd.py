"""`git aipass claim GLOB...`, `claim list`, `claim release`: say what you are about to change."""

from __future__ import annotations

from typing import List, Optional

import click
import typer

from aipass_git.agents import policy
from aipass_git.agents.session import Session
from aipass_git.claims import claim as claim_mod
from aipass_git.cli.app import FullListing, commands, group
from aipass_git.cli.output import emit_json, table
from aipass_git.core import clock, schemas
from aipass_git.core.errors import AipassError, RefusedError
from aipass_git.core.repo import discover
from aipass_git.core.text import for_terminal, plural
from aipass_git.core.validate import check_input
from aipass_git.dispatch import path_claims
from aipass_git.mail.postoffice import PostOffice
from aipass_git.store.events import EventStore

app = commands()


class ClaimGroup(FullListing):
    """`claim GLOB...` claims; `claim list` and `claim release` are the other verbs."""

    def resolve_command(self, ctx: click.Context, args: list[str]):
        if args and args[0] not in self.list_commands(ctx) and not args[0].startswith("-"):
            return "add", self.get_command(ctx, "add"), args
        return super().resolve_command(ctx, args)


claim_app = group("claim", "Claims: say which paths you are about to change, for a while.", cls=ClaimGroup)
app.add_typer(claim_app, name="claim")

JSON = typer.Option(False, "--json", help="Print JSON for scripts and agents.")


@claim_app.command("add")
def add(
    globs: List[str] = typer.Argument(..., metavar="GLOB...", help="Paths, as globs relative to the repository root."),
    ttl: str = typer.Option("2h", "--ttl", help="How long it holds: 90m, 2h, 1d."),
    shared: bool = typer.Option(False, "--shared", help="Others may claim it too (a heads-up, not a lock)."),
    reason: str = typer.Option("", "--reason", help="What you are about to do."),
    force: bool = typer.Option(False, "--force", help="Take over overlapping exclusive claims (the human or the orchestrator)."),
    as_json: bool = JSON,
) -> None:
    """Claim paths (the default verb: `git aipass claim GLOB...`).

    An exclusive claim (the default) may not overlap another agent's active exclusive
    claim; commits into it by anyone else are refused by the pre-commit hook until it is
    released or expires."""
    repo = discover()
    session = Session.open(repo)
    who = session.speaker.name
    seconds = claim_mod.ttl(ttl)
    for glob in globs:
        check_input(glob, schemas.OWNED_GLOB, "GLOB", "give globs relative to the repository root without '..', e.g. 'src/api/**'")
    mode = "shared" if shared else "exclusive"
    with EventStore(repo) as store:
        taken = claim_mod.take(store, who, globs, author=session.speaker.author, mode=mode, reason=reason.strip(),
                               ttl_seconds=seconds, force=force, may_force=policy.may_force_claim(who, session.config.orchestrator))
    made = taken.made
    for holder in sorted({h for h, _ in taken.lost}):
        try:
            with PostOffice(session) as po:
                po.send([f"@{holder}"], f"your claim on {', '.join(c['glob'] for h, c in taken.lost if h == holder)} was taken by @{who}"[:200],
                        f"@{who} claimed {', '.join(globs)} with --force; your overlapping claims are released.\n"
                        + (f"Reason: {reason}\n" if reason else ""))
        except AipassError:
            pass  # the claim is taken either way; the mail is a courtesy
    if as_json:
        emit_json({"v": 1, "claims": made})
        return
    typer.echo(f"@{who} claims {', '.join(globs)} ({mode}) until {made[0]['expires']}")


@claim_app.command("list")
def list_(include_all: bool = typer.Option(False, "--all", "-a", help="Expired and released ones too."), as_json: bool = JSON) -> None:
    """Active claims: who, what, exclusive or shared, until when, why."""
    with EventStore(discover()) as store:
        book = claim_mod.ClaimBook(store)
        books = book.everyone()
    for claimant, why in sorted(book.unproven.items()):  # forged or damaged: shown, never enforced
        typer.echo(f"warning: the claims of @{claimant} are not enforced: {why}", err=True)
    now = clock.utc_now()
    rows = []
    for holder, doc in sorted(books.items()):
        live = {c["id"] for c in claim_mod.active(doc, now)}
        for c in doc["claims"]:
            if include_all or c["id"] in live:
                rows.append({**c, "claimant": holder, "active": c["id"] in live})
    if as_json:
        emit_json({"v": 1, "claims": rows})
        return
    if not rows:
        typer.echo("no claims")
        return
    typer.echo(table(["CLAIMANT", "GLOB", "MODE", "UNTIL", "ACTIVE", "REASON"],
                     [(f"@{r['claimant']}", r["glob"], r["mode"], r["expires"], "yes" if r["active"] else "no",
                       for_terminal(r["reason"]) or "-") for r in rows]))


@claim_app.command("release")
def release(globs: Optional[List[str]] = typer.Argument(None, metavar="[GLOB...]", help="Claims to release (default: all yours).")) -> None:
    """Release your claims (all of them, or those on the globs given)."""
    repo = discover()
    session = Session.open(repo)
    who = session.speaker.name
    with EventStore(repo) as store:
        books = claim_mod.ClaimBook(store).everyone()
        mine = claim_mod.active(books[who], clock.utc_now()) if who in books else []
        chosen = [c for c in mine if not globs or c["glob"] in globs]
        if globs and not chosen:
            raise RefusedError(f"@{who} has no active claim on {', '.join(globs)}", "see: git aipass claim list")
        if chosen:
            store.append(claim_mod.ref_for(who), claim_mod.released(who, [c["id"] for c in chosen], session.speaker.author))
    if chosen:
        path_claims.wake_waiters(repo)  # a dispatch queued behind these paths may run now
    typer.echo(f"released {plural(len(chosen), 'claim')}" if chosen else "nothing to release")
