"""`git aipass key show/rotate/import`: the signing keys of agents and of you."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from aipass_git.agents import policy, signers
from aipass_git.agents.session import Session
from aipass_git.cli.app import commands, group
from aipass_git.cli.output import emit_json, short, table
from aipass_git.core.repo import discover

app = commands()

key_app = group("key", "Signing keys: every event is signed by its speaker; show, rotate and import them.")
app.add_typer(key_app, name="key")

JSON = typer.Option(False, "--json", help="Print JSON for scripts and agents.")
WHO = typer.Argument(None, metavar="[@AGENT|human]", help="Whose keys (default: yours).")


def _print(doc: dict) -> None:
    typer.echo(f"{doc['who']} signs as {doc['principal']}")
    typer.echo(table(["FINGERPRINT", "FROM", "UNTIL", "IN THIS CLONE"],
                     [(k["fingerprint"], k["from"], k.get("until") or "-", "yes" if k["here"] else "-") for k in doc["keys"]],
                     max_width=60))
    if doc["private_key"]:
        typer.echo(f"private key: {doc['private_key']}")
    else:
        typer.echo("no private key here: events cannot be signed as them in this clone "
                   "(copy the key file from the clone that has it, then: git aipass key import)")


@key_app.command("show")
def show(who: Optional[str] = WHO, as_json: bool = JSON) -> None:
    """Show the public keys trusted for someone, and whether this clone holds their private key."""
    doc = signers.show(discover(), who)
    emit_json(doc) if as_json else _print(doc)


@key_app.command("rotate")
def rotate(
    who: Optional[str] = WHO,
    key_file: Optional[Path] = typer.Option(None, "--key", metavar="FILE", help="Use this Ed25519 private key (default: a new one)."),
    as_json: bool = JSON,
) -> None:
    """Give someone a new signing key and commit it; the old one keeps verifying what it signed.

    Also how a second clone's key is added for an agent that will run there: rotate in that
    clone, commit, merge to the base branch.
    """
    repo = discover()
    policy.require_may_manage_keys(Session.open(repo).speaker.name)
    doc, commit = signers.rotate(repo, who, key_file=key_file)
    if as_json:
        emit_json({**doc, "commit": commit})
        return
    _print(doc)
    typer.echo(f"committed ({short(commit)}); the key counts once this commit is on the base branch")


@key_app.command("import")
def import_(
    who: str = typer.Argument(..., metavar="@AGENT|human", help="Whose key this is."),
    key_file: Path = typer.Argument(..., metavar="FILE", help="The private key file (from the other clone's `key show`)."),
    as_json: bool = JSON,
) -> None:
    """Bring someone's private key to this clone, e.g. to the clone an agent runs in."""
    repo = discover()
    policy.require_may_manage_keys(Session.open(repo).speaker.name)
    doc = signers.import_key(repo, who, key_file)
    emit_json(doc) if as_json else _print(doc)
