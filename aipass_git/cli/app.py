"""The typer application object shared by every command module."""

from __future__ import annotations

import typer

# the arguments of this invocation, for the few checks that must see them as typed
ARGV: list[str] = []

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _options() -> dict:
    return dict(
        context_settings=CONTEXT,
        add_completion=False,
        pretty_exceptions_enable=False,
        invoke_without_command=True,
    )


def show_help_without_command(ctx: typer.Context) -> None:
    """A group called without a command prints its help and succeeds, like `git remote -h`."""
    if ctx.invoked_subcommand is None:
        text = ctx.get_help()
        if text:  # typer's rich formatter prints by itself and returns nothing
            typer.echo(text)
        raise typer.Exit(0)


def group(name: str, help_text: str) -> typer.Typer:
    sub = typer.Typer(name=name, help=help_text, **_options())
    sub.callback()(show_help_without_command)
    return sub


app = typer.Typer(
    name="git aipass",
    help=(
        "Identity, memory, mail and dispatch for AI coding agents, kept inside git.\n\n"
        "Start with `git aipass demo` for a tour in a throw-away repository, or "
        "`git aipass init` in your own. `git aipass help COMMAND` explains any command."
    ),
    **_options(),
)
