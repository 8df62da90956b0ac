"""`git aipass agent ...`: create, list, show and retire agents."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from aipass_git.agents import templates as agent_templates
from aipass_git.agents.registry import Registry
from aipass_git.agents.session import Session
from aipass_git.claims import claim as claims
from aipass_git.cli.app import commands, group
from aipass_git.cli.output import emit_json, progress, short, table
from aipass_git.core import config as config_mod
from aipass_git.core.documents import load_yaml
from aipass_git.core.errors import RefusedError
from aipass_git.core.repo import discover
from aipass_git.core.schemas import MEMORY_SECTIONS
from aipass_git.core.text import plural
from aipass_git.dispatch import path_claims, providers
from aipass_git.memory import working
from aipass_git.store.events import EventStore

app = commands()

agent_app = group("agent", "Create, list, show and retire agents (their passports live in .aipass/agents/).")
app.add_typer(agent_app, name="agent")

JSON = typer.Option(False, "--json", help="Print JSON for scripts and agents.")


def _registry():

    return Registry(discover())


@agent_app.command("new")
def new(
    name: Optional[str] = typer.Argument(None, help="Agent name: lower-case letter first, then a-z 0-9 - _ (@name works too)."),
    role: Optional[str] = typer.Option(None, "--role", help="One line: what this agent is responsible for."),
    provider: Optional[str] = typer.Option(
        None, "--provider", help="claude, codex, gemini, command, or one defined in .aipass/config.yaml (default from config)."
    ),
    model: Optional[str] = typer.Option(None, "--model", help="Model passed to the provider's CLI."),
    owns: Optional[List[str]] = typer.Option(
        None, "--owns", metavar="GLOB", help="Paths this agent owns, as globs relative to the repository root (repeatable)."
    ),
    template: str = typer.Option("default", "--template", help="Template from templates/agents/ (see: git aipass agent templates)."),
    home: Optional[str] = typer.Option(None, "--home", metavar="CLONE", help="The clone that runs this agent (its `git config aipass.clone`); other clones deliver its dispatches and do not run them."),
    from_file: Optional[Path] = typer.Option(None, "--from", metavar="FILE", help="Create many agents in one commit: a YAML list of mappings with name, role and optionally provider, model, owns, template, home."),
    as_json: bool = JSON,
) -> None:
    """Create an agent: passport, working memory and README, committed in one commit.

    With --from FILE, every agent the file lists, in one commit (checked first, all or none)."""
    if from_file is not None and (name is not None or role is not None):
        raise RefusedError("give NAME --role ROLE, or --from FILE, not both", "see: git aipass agent new -h")
    if from_file is None and (name is None or role is None):
        raise RefusedError(f"agent new needs {'NAME and ' if name is None else ''}--role", "see: git aipass agent new -h")
    registry = _registry()
    if from_file is not None:
        with progress("creating agents") as bar:
            agents, commit = registry.create_many(_agent_specs(from_file), progress=bar)
        if as_json:
            emit_json({"v": 1, "agents": [a.passport for a in agents], "commit": commit})
        else:
            typer.echo(f"created {plural(len(agents), 'agent')} in one commit ({short(commit)})")
        return
    agent, commit = registry.create(name, role=role, provider=provider, model=model, owns=owns, template=template, home=home)
    if as_json:
        emit_json({"agent": agent.passport, "commit": commit})
    else:
        typer.echo(f"created agent {agent.name} ({agent.provider}) in .aipass/agents/{agent.name}/ ({short(commit)})")
    # the agent exists either way; say now what would make its first dispatch bounce
    for _, what, hint in providers.problems(config_mod.load(registry.repo), agent.provider):
        typer.echo(f"warning: {what}\nhint: {hint}", err=True)


def _agent_specs(path: Path) -> list[dict]:
    """The agents FILE lists (a YAML list of mappings)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RefusedError(f"--from: cannot read {path}: {exc.strerror}", "give a YAML file listing the agents") from None
    found = load_yaml(text, str(path), "a YAML list of mappings with name and role")
    if not isinstance(found, list) or not all(isinstance(a, dict) for a in found):
        raise RefusedError(f"--from: {path} is not a list of mappings", "- {name: api, role: builds the API}")
    return found


@agent_app.command("list")
def list_(
    include_retired: bool = typer.Option(False, "--all", "-a", help="Include retired agents."),
    as_json: bool = JSON,
) -> None:
    """List agents: name, provider, model, status, owned paths, role."""
    agents = _registry().all(include_retired=include_retired)
    if as_json:
        emit_json({"v": 1, "agents": [a.passport for a in agents]})
        return
    if not agents:
        typer.echo("no agents yet; create one with: git aipass agent new NAME --role TEXT")
        return
    typer.echo(agents_table([a.passport for a in agents]))


def agents_table(passports: list[dict]) -> str:
    """The one table of agents (agent list, the demo): name, provider, model, status, owned paths, role."""
    return table(["NAME", "PROVIDER", "MODEL", "STATUS", "OWNS", "ROLE"],
                 [(p["name"], p["provider"], p.get("model") or "-", p["status"], " ".join(p.get("owns") or []) or "-",
                   p["role"]) for p in passports])


@agent_app.command("show")
def show(
    name: str = typer.Argument(..., help="The agent (@name works too)."),
    as_json: bool = JSON,
) -> None:
    """Show an agent's passport and the size of its working memory."""
    registry = _registry()
    agent = registry.get(name)

    memory = working.load(registry.repo.root, agent.name)

    counts = {section: len(memory[section]) for section in MEMORY_SECTIONS}
    if as_json:
        emit_json({"agent": agent.passport, "memory": counts})
        return
    p = agent.passport
    rows = [
        ("name", p["name"]),
        ("role", p["role"]),
        ("status", p["status"] + (f" since {p['retired']}" if p["retired"] else "")),
        ("provider", p["provider"] + (f" ({p['model']})" if p["model"] else "")),
        ("owns", ", ".join(p["owns"]) or "-"),
        ("home", p.get("home") or "any clone"),
        ("template", p["template"]),
        ("created", f"{p['created']} by {p['created_by']}"),
        ("memory", ", ".join(f"{n} {s}" for s, n in counts.items())),
        ("folder", f".aipass/agents/{agent.name}/"),
    ]
    width = max(len(k) for k, _ in rows)
    typer.echo("\n".join(f"{k.ljust(width)}  {v}" for k, v in rows))


@agent_app.command("retire")
def retire(
    name: str = typer.Argument(..., help="The agent to retire (@name works too)."),
    as_json: bool = JSON,
) -> None:
    """Retire an agent: it keeps its files and history but can no longer be addressed."""
    registry = _registry()
    agent, commit = registry.retire(name)
    with EventStore(registry.repo) as store:  # a retired agent's claims would block others for nothing
        if claims.release_all(store, agent.name, Session.open(registry.repo).speaker.author, "released on retirement:"):
            path_claims.wake_waiters(registry.repo)
    if as_json:
        emit_json({"agent": agent.passport, "commit": commit, "changed": commit is not None})
    elif commit is None:
        typer.echo(f"{agent.name} was already retired; nothing changed")
    else:
        typer.echo(f"retired agent {agent.name} ({short(commit)})")


@agent_app.command("templates")
def templates_(as_json: bool = JSON) -> None:
    """List the templates `agent new --template` accepts."""
    loaded = [agent_templates.load(n) for n in agent_templates.available()]
    if as_json:
        emit_json({"templates": [{"name": t.name, "description": t.description, "role": t.role, "owns": list(t.owns)} for t in loaded]})
        return
    typer.echo(table(["TEMPLATE", "DESCRIPTION"], [(t.name, t.description) for t in loaded], max_width=90))
