"""The root of the command line, and how command modules are found.

The root group loads a command's module only when that command runs (or when help lists
them all): importing every module's library code costs about 200 ms at each start (see
bench/startup.py), and `git aipass inbox` must not pay for `audit` or `memory search`.
So command modules import what they use at their top, and COMMANDS below says which
module holds each command.
"""

from __future__ import annotations

import importlib
from functools import cache

import click
import typer
from typer.core import TyperGroup

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

# Each command or group: the module under aipass_git.cli that defines it, and the summary
# the root's help lists (git keeps such a list too, in command-list.txt): `-h` then needs
# no module imported. tests/test_cli.py checks each summary against the command's help.
COMMANDS = {
    "init": ("setup_cmd", "Set up aipass-git in this repository and commit the result."),
    "doctor": ("setup_cmd", "Check git, config, passports, providers, hooks, refs and leftovers of crashes."),
    "housekeeping": ("setup_cmd", "Repack the object store when packs or loose objects pile up (started by itself when due)."),
    "demo": ("setup_cmd", "Show aipass-git at work in a throw-away repository. Needs no AI provider and no network."),
    "agent": ("agent_cmd", "Create, list, show and retire agents (their passports live in .aipass/agents/)."),
    "send": ("mail_cmd", 'Send a message: `git aipass send @quality "subject" "body"`.'),
    "inbox": ("mail_cmd", "List a mailbox: unread first, newest first."),
    "read": ("mail_cmd", "Show a message and mark it read."),
    "reply": ("mail_cmd", "Answer a message: to its sender, in the same thread; the original is marked done."),
    "done": ("mail_cmd", "Mark messages done."),
    "thread": ("mail_cmd", "Show a whole conversation, across mailboxes, oldest first."),
    "mail": ("mail_cmd", "Mail history: the event log of a mailbox ref."),
    "dispatch": ("dispatch_cmd", "Send a task and wake the agent's CLI on its desk, watched by a supervisor."),
    "cancel": ("dispatch_cmd", "Stop the running dispatch of an agent, or take back a queued one."),
    "status": ("dispatch_cmd", "What every agent is doing: idle, queued, starting, running (attempt N of M), backoff."),
    "monitor": ("monitor_cmd", "Watch the team at work: agents, problems, recent events, open PRs and plans."),
    "report": ("monitor_cmd", "The team's figures: dispatches and outcomes, run times, mail and answers, PRs, audits, memory, plans."),
    "log": ("dispatch_cmd", "The event log of wakes and runs (events.jsonl in the git common dir)."),
    "memory": ("memory_cmd", "Agents' working memory, its archive, and search by meaning."),
    "reindex": ("memory_cmd", "Rebuild the memory index and the mail summary index from git (both derived; nothing is lost)."),
    "pr": ("pr_cmd", "PRs: agents open them from their desks; the orchestrator or the human merges."),
    "audit": ("audit_cmd", "Check the repository against the standards; exit 1 when any error is found."),
    "plan": ("plan_cmd", "Plans: phases as events, made from templates; see what is ready to start."),
    "key": ("key_cmd", "Signing keys: every event is signed by its speaker; show, rotate and import them."),
    "sync": ("sync_cmd", "Exchange mail and PRs with a remote: fetch, merge what diverged, push; never forced."),
    "clone": ("sync_cmd", "Clone a repository and join its agents: git clone, set-up of this clone, one sync."),
    "triggers": ("triggers_cmd", "Rules in .aipass/triggers.yaml: what fires on which event or schedule."),
    "daemon": ("triggers_cmd", "One long-lived process per repository that fires rules and schedules as events happen."),
    "conflicts": ("pr_cmd", "Which live desks will not merge cleanly, with each other or with the base branch."),
    "claim": ("claim_cmd", "Claims: say which paths you are about to change, for a while."),
    "hooks": ("hooks_cmd", "Install the git hooks: audits on commit and push, wakes on fetched mail."),
    "hook": ("hooks_cmd", None),  # hidden: what the git hook shims call
}


def _options() -> dict:
    return dict(
        context_settings=CONTEXT,
        add_completion=False,
        pretty_exceptions_enable=False,
        invoke_without_command=True,
    )


@cache
def _module_group(module: str) -> click.Group:
    return typer.main.get_group(importlib.import_module(f"aipass_git.cli.{module}").app)


class FullListing(TyperGroup):
    """A group whose help lists every command with its whole summary: click would cut each
    to what fits beside the longest name on an 80-column line."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            cmd = self.get_command(ctx, name)
            if cmd is not None and not cmd.hidden:
                rows.append((name, cmd.get_short_help_str(limit=10_000)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


class LazyGroup(FullListing):
    """The root group: the commands of COMMANDS come from their modules on demand; its
    own help lists them by their summaries."""

    listing = False  # while the root's help is rendered

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        found = super().get_command(ctx, name)
        if found is not None or name not in COMMANDS:
            return found
        module, summary = COMMANDS[name]
        if self.listing:
            return click.Command(name, help=summary, hidden=summary is None)
        return _module_group(module).get_command(ctx, name)

    def resolve_command(self, ctx: click.Context, args: list[str]):
        """`git aipass @agent "task"` is `dispatch @agent SUBJECT TASK`, the subject being the
        task's first line: the one shorthand, read here rather than by rewriting argv."""
        if args and args[0].startswith("@"):
            if len(args) < 2:
                raise click.UsageError(f"{args[0]}: what is the task?  e.g. git aipass {args[0]} \"fix the tests\"", ctx)
            task = args[1]
            subject = task.strip().splitlines()[0][:200] if task.strip() else task
            return "dispatch", self.get_command(ctx, "dispatch"), [args[0], subject, task, *args[2:]]
        return super().resolve_command(ctx, args)

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        self.listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self.listing = False


def show_help_without_command(ctx: typer.Context) -> None:
    """A group called without a command prints its help and succeeds, like `git remote -h`."""
    if ctx.invoked_subcommand is None:
        text = ctx.get_help()
        if text:  # typer's rich formatter prints by itself and returns nothing
            typer.echo(text)
        raise typer.Exit(0)


def commands() -> typer.Typer:
    """The Typer a command module registers its commands on."""
    return typer.Typer(**_options())


def group(name: str, help_text: str, cls: type[TyperGroup] | None = None) -> typer.Typer:
    sub = typer.Typer(name=name, help=help_text, cls=cls or FullListing, **_options())
    sub.callback()(show_help_without_command)
    return sub


root = typer.Typer(
    name="git aipass",
    cls=LazyGroup,
    help=(
        "Identity, memory, mail and dispatch for AI coding agents, kept inside git.\n\n"
        "Start with `git aipass demo` for a tour in a throw-away repository, or "
        "`git aipass init` in your own. `git aipass help COMMAND` explains any command."
    ),
    **_options(),
)
