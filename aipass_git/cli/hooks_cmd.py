"""`git aipass hooks install/uninstall/status`, and `git aipass hook NAME` that the shims call."""

from __future__ import annotations

import sys
from typing import List, Optional

import typer

from aipass_git.cli.app import app, group
from aipass_git.cli.output import emit_json

hooks_app = group("hooks", "Install the git hooks: audits on commit and push, wakes on fetched mail.")
app.add_typer(hooks_app, name="hooks")


@hooks_app.command("install")
def install() -> None:
    """Install the hook shims where git looks for hooks (core.hooksPath included).

    A hook that is already there keeps working: it is renamed <hook>.aipass-chained and
    runs first.
    """
    from aipass_git.core.repo import discover
    from aipass_git.hooks import install as hooks

    repo = discover()
    done = hooks.install(repo)
    typer.echo(f"installed {', '.join(done)} in {hooks.hooks_dir(repo)}")


@hooks_app.command("uninstall")
def uninstall() -> None:
    """Remove the shims and put back any hook they had chained."""
    from aipass_git.core.repo import discover
    from aipass_git.hooks import install as hooks

    done = hooks.uninstall(discover())
    typer.echo(f"removed {', '.join(done)}" if done else "no aipass hooks were installed")


@hooks_app.command("status")
def status(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Which aipass hooks are installed, and where."""
    from aipass_git.core.repo import discover
    from aipass_git.hooks import install as hooks

    repo = discover()
    done = hooks.installed(repo)
    if as_json:
        emit_json({"dir": str(hooks.hooks_dir(repo)), "installed": done, "all": list(hooks.HOOKS)})
    else:
        typer.echo(f"{hooks.hooks_dir(repo)}: " + (", ".join(done) or "none installed"))


@app.command("hook", hidden=True)
def hook(name: str, args: Optional[List[str]] = typer.Argument(None)) -> None:
    """Entry point of the shims: `git aipass hook pre-commit`."""
    from aipass_git.core.repo import discover

    args = args or []
    repo = discover()
    if name == "pre-commit":
        from aipass_git.hooks.guard import pre_commit

        _refuse(pre_commit(repo), "commit")
    elif name == "pre-push":
        from aipass_git.hooks.guard import pre_push

        updates = [tuple(l.split()) for l in sys.stdin.read().splitlines() if len(l.split()) == 4]
        _refuse(pre_push(repo, updates), "push")  # type: ignore[arg-type]
    elif name in ("post-merge", "post-checkout"):
        from aipass_git.hooks.events import archives_changed, commit_overflow_in_background, refresh_index_in_background

        if name == "post-merge":
            commit_overflow_in_background(repo)
        old, new = ("ORIG_HEAD", "HEAD") if name == "post-merge" else (args[0] if args else "", args[1] if len(args) > 1 else "")
        if archives_changed(repo, old, new):
            refresh_index_in_background(repo)
    elif name == "reference-transaction":
        from aipass_git.hooks.events import wake_on_mail

        if args and args[0] == "committed":
            wake_on_mail(repo, sys.stdin.read().splitlines())


def _refuse(problems: list[str], what: str) -> None:
    if problems:
        sys.stderr.write(f"aipass: {what} refused\n" + "".join(f"error: {p}\n" for p in problems))
        raise typer.Exit(1)
