"""`git aipass hooks install/uninstall/status`, and `git aipass hook NAME` that the shims call."""

from __future__ import annotations

import sys
from typing import List, Optional

import typer

from aipass_git.cli.app import commands, group
from aipass_git.cli.output import emit_json
from aipass_git.core.repo import discover
from aipass_git.hooks import entry, install as hooks

app = commands()

hooks_app = group("hooks", "Install the git hooks: audits on commit and push, wakes on fetched mail.")
app.add_typer(hooks_app, name="hooks")


@hooks_app.command("install")
def install() -> None:
    """Install the hook shims where git looks for hooks (core.hooksPath included).

    A hook that is already there keeps working: it is renamed <hook>.aipass-chained and
    runs first.
    """
    repo = discover()
    done = hooks.install(repo)
    typer.echo(f"installed {', '.join(done)} in {hooks.hooks_dir(repo)}")


@hooks_app.command("uninstall")
def uninstall() -> None:
    """Remove the shims and put back any hook they had chained."""
    done = hooks.uninstall(discover())
    typer.echo(f"removed {', '.join(done)}" if done else "no aipass hooks were installed")


@hooks_app.command("status")
def status(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Which aipass hooks are installed, and where."""
    repo = discover()
    done = hooks.installed(repo)
    if as_json:
        emit_json({"dir": str(hooks.hooks_dir(repo)), "installed": done, "all": list(hooks.HOOKS)})
    else:
        typer.echo(f"{hooks.hooks_dir(repo)}: " + (", ".join(done) or "none installed"))


@app.command("hook", hidden=True)
def hook(name: str, args: Optional[List[str]] = typer.Argument(None)) -> None:
    """Entry point of the shims: `git aipass hook pre-commit`."""
    stdin = sys.stdin.read() if name in ("pre-push", "reference-transaction") else ""
    problems = entry.run(discover(), name, args or [], stdin)
    if problems:
        sys.stderr.write(f"aipass: {entry.REFUSING[name]} refused\n" + "".join(f"error: {p}\n" for p in problems))
        raise typer.Exit(1)
