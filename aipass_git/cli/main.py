"""Entry point of `git aipass` / `git-aipass` / `python -m aipass_git`.

Parses, dispatches to the command modules and turns failures into `error:` and `hint:`
lines with the exit codes of the manual page: 0 ok, 1 failed, 2 refused or usage error
(124: dispatch --wait ran out of time).
"""

from __future__ import annotations

import os
import sys
import traceback

import click
import typer

from aipass_git import __version__
from aipass_git.cli.app import root as app, show_help_without_command
from aipass_git.cli.output import paint
from aipass_git.core.errors import AipassError, RefusedError, from_os_error
from aipass_git.core.text import for_terminal

PROG = "git aipass"


@app.callback()
def root(
    ctx: typer.Context,
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors."),
    version: bool = typer.Option(False, "--version", help="Print the version and exit."),
) -> None:
    if version:
        typer.echo(f"aipass-git {__version__}")
        raise typer.Exit(0)
    show_help_without_command(ctx)


@app.command("help")
def help_command(
    ctx: typer.Context,
    command: list[str] = typer.Argument(None, help="The command to explain, e.g. `agent new`."),
) -> None:
    """Explain a command (same as COMMAND -h)."""
    root_ctx = ctx.find_root()
    current: click.Command = root_ctx.command
    current_ctx = root_ctx
    for word in command or []:
        sub = current.get_command(current_ctx, word) if isinstance(current, click.Group) else None
        if sub is None:
            raise RefusedError(f"no command {' '.join(command)!r}", f"see the list with: {PROG} -h")
        current_ctx = click.Context(sub, info_name=word, parent=current_ctx)
        current = sub
    # Exactly what `COMMAND -h` prints (the rich formatter prints itself and returns "").
    typer.echo(current.get_help(current_ctx))


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or bool(os.environ.get("AIPASS_DEBUG"))
    command = typer.main.get_command(app)
    try:
        result = command.main(args=args, prog_name=PROG, standalone_mode=False)
        return result if isinstance(result, int) else 0
    except AipassError as exc:
        if debug:
            traceback.print_exc()
        _error(exc.message, exc.hint)
        return exc.exit_code
    except click.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx else PROG
        _error(exc.format_message(), f"see: {where} -h")
        return 2
    except click.ClickException as exc:
        _error(exc.format_message())
        return exc.exit_code
    except (click.Abort, KeyboardInterrupt):
        sys.stderr.write("interrupted\n")
        return 130
    except BrokenPipeError:
        # `git aipass agent list | head`: the reader left; not an error of ours.
        sys.stderr.close()
        return 0
    except OSError as exc:  # a full disk, a read-only object store, a file size limit
        if debug:
            traceback.print_exc()
        error = from_os_error(exc)
        _error(error.message, error.hint)
        return error.exit_code
    except Exception as exc:  # noqa: BLE001 - the last line of defence before a traceback
        if debug:
            traceback.print_exc()
        _error(f"unexpected {type(exc).__name__}: {exc}", "run again with --debug and report it")
        return 1


def _error(message: str, hint: str | None = None) -> None:
    # a message may quote what the user or a file gave: never let it drive the terminal
    sys.stderr.write(f"{paint('error:', '1;31', sys.stderr)} {for_terminal(message)}\n")
    if hint:
        sys.stderr.write(f"{paint('hint:', '36', sys.stderr)} {for_terminal(hint)}\n")


if __name__ == "__main__":
    raise SystemExit(main())
