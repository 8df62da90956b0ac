"""Set-up commands: init, doctor, demo."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from aipass_git.cli.app import commands
from aipass_git.cli.output import emit_json, short, spinner, table
from aipass_git.core.repo import discover
from aipass_git.hooks.install import OWN_DIR_HINT
from aipass_git.setup import leftovers
from aipass_git.setup.doctor import examine
from aipass_git.setup.project_init import initialise
from aipass_git.store import housekeeping as store_housekeeping
from aipass_git.core.text import plural

app = commands()

JSON = typer.Option(False, "--json", help="Print JSON for scripts and agents.")


@app.command()
def init(
    orchestrator: Optional[str] = typer.Option(
        None, "--orchestrator", metavar="NAME", help="Name of the orchestrator agent (default: devpulse)."
    ),
    no_hooks: bool = typer.Option(False, "--no-hooks", help="Do not install the git hooks."),
    as_json: bool = JSON,
) -> None:
    """Set up aipass-git in this repository and commit the result.

    Writes .aipass/config.yaml, the orchestrator's passport and the .gitattributes entries
    for .aipass files, then commits them. Safe to run again: it only adds what is missing.
    """
    result = initialise(discover(), orchestrator=orchestrator, hooks=not no_hooks)
    if as_json:
        emit_json(
            {"changed": result.changed, "commit": result.commit, "files": result.files,
             "drivers_installed": result.drivers_installed, "hooks_installed": result.hooks_installed,
             "hooks_skipped": result.hooks_skipped, "remotes_set_up": result.remotes_set_up,
             "orchestrator": result.orchestrator, "base_branch": result.base_branch}
        )
        return
    if result.hooks_skipped:
        typer.echo(f"warning: hooks not installed: {result.hooks_skipped}\nhint: {OWN_DIR_HINT}", err=True)
    if result.files:
        typer.echo(
            f"aipass-git set up: orchestrator @{result.orchestrator}, base branch {result.base_branch}, "
            f"{plural(len(result.files), 'file')} committed ({short(result.commit)})"
        )
        typer.echo("next: git aipass agent new NAME --role TEXT")
    elif result.drivers_installed or result.hooks_installed or result.remotes_set_up:
        typer.echo("set up this clone: " + ", ".join(
            (["memory.json diff and merge drivers"] if result.drivers_installed else [])
            + ([f"hooks ({', '.join(result.hooks_installed)})"] if result.hooks_installed else [])
            + ([f"event refs from {', '.join(result.remotes_set_up)}"] if result.remotes_set_up else [])
        ) + "; nothing to commit")
    else:
        typer.echo("already set up; nothing changed")
    if result.remotes_set_up:
        typer.echo(f"next: git aipass sync {result.remotes_set_up[0]}  (brings the mail and PRs of the other clones)")


@app.command()
def doctor(
    fix: bool = typer.Option(False, "--fix", help="First repair what killed processes left behind (stale locks, "
                             "interrupted writes, temporary files, dead sessions), then check."),
    as_json: bool = JSON,
) -> None:
    """Check git, config, passports, providers, hooks, refs and leftovers of crashes.

    Without --fix it changes nothing. Exit 1 when any check is an error; warnings alone exit 0.
    """
    repaired = []
    if fix:

        repaired = leftovers.fix(discover())
    checks = examine()
    failed = any(c.status == "error" for c in checks)
    if as_json:
        emit_json({"ok": not failed, "fixed": repaired, "checks": [c.as_dict() for c in checks]})
    else:
        for line in repaired:
            typer.echo(f"fixed: {line}")
        typer.echo(table(["CHECK", "STATUS", "DETAIL"], [(c.name, c.status, c.detail) for c in checks], max_width=90))
        for c in checks:
            if c.status != "ok" and c.hint:
                typer.echo(f"hint ({c.name}): {c.hint}")
    if failed:
        raise typer.Exit(1)


@app.command()
def demo(
    directory: Optional[Path] = typer.Option(
        None, "--dir", metavar="PATH", help="Where to create the demo repository (new or empty; default: a temporary folder)."
    ),
    as_json: bool = JSON,
) -> None:
    """Show aipass-git at work in a throw-away repository. Needs no AI provider and no network."""
    from aipass_git.cli.agent_cmd import agents_table  # deferred: as the demo itself
    from aipass_git.setup import demo as demo_mod  # deferred: the demo loads the merge queue and dispatch; doctor and init do not need them

    with spinner("building the demo repository") as show:
        result = demo_mod.run(directory, on_step=show)
    if as_json:
        emit_json(
            {"path": str(result.path), "steps": result.steps, "agents": result.agents,
             "log": result.log, "files": result.files, "inbox": result.inbox, "mail_log": result.mail_log,
             "dispatch": result.dispatch, "desk_commits": result.desk_commits, "desk_files": result.desk_files,
             "merges": result.merges, "memory": result.memory}
        )
        return
    typer.echo(f"demo repository: {result.path}\n")
    for i, step in enumerate(result.steps, 1):
        typer.echo(f"{i}. {step}")
    typer.echo("\nagents (git aipass agent list):")
    typer.echo(_indent(agents_table(result.agents)))
    typer.echo("\ncommitted files (git ls-files .aipass .gitattributes):")
    typer.echo(_indent("\n".join(result.files)))
    typer.echo("\nthe human's inbox (git aipass inbox):")
    rows = [(m["id"][:12], m["status"], f"@{m['from']}", m["subject"]) for m in result.inbox]
    typer.echo(_indent(table(["ID", "STATUS", "FROM", "SUBJECT"], rows)))
    typer.echo("\n@api's mailbox, read with plain git (git log --oneline refs/aipass/mail/api):")
    typer.echo(_indent("\n".join(result.mail_log)))
    typer.echo("\nwhat @docs committed on its desk (git log --oneline main..aipass/docs):")
    typer.echo(_indent("\n".join(result.desk_commits)))
    typer.echo("  files: " + ", ".join(result.desk_files))
    typer.echo("\n@docs's memory on main after the merge (git aipass memory show @docs):")
    for section in ("learnings", "sessions"):
        for e in result.memory.get(section, []):
            typer.echo(f"  {section[:-1]:<9} {' '.join(e['text'].split())[:100]}")
    typer.echo("\nhistory of main (git log --oneline):")
    typer.echo(_indent("\n".join(result.log)))
    typer.echo(
        f"\nlook around:\n  cd {result.path}\n  git aipass agent show quality\n"
        f"  git aipass thread {result.inbox[0]['id'][:12] if result.inbox else 'ID'}\n  git aipass doctor"
    )


@app.command()
def housekeeping(
    force: bool = typer.Option(False, "--force", help="Repack even when nothing is due."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing (as when started by itself)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts and agents."),
) -> None:
    """Repack the object store when packs or loose objects pile up (started by itself when due).

    A geometric repack (small packs and loose objects rolled into bigger ones, big packs
    left alone), then pack-refs. Writes start it in the background when it is due."""
    done = store_housekeeping.run(discover(), force=force)
    if as_json:
        emit_json({"v": 1, **done})
    elif not quiet:
        typer.echo(f"repacked ({done['reason']}): {done['packs_before']} -> {done['packs']} packs, "
                   f"about {done['loose_before']} -> {done['loose']} loose objects" if done["done"] else
                   f"nothing due: {plural(done['packs'], 'pack')}, about {done['loose']} loose objects")


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())
