"""Who is speaking (ARCHITECTURE.md, section 3).

In order: the `AIPASS_AGENT` variable a wake sets; else the agent whose desk (a worktree on
branch `aipass/<name>`) the command runs in; else the human at the keyboard (git's user).
A claimed identity that contradicts the desk is refused: a wrong sender is worse than none.
Who may act for whom is decided in policy.py.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping

from aipass_git.agents import desk, policy
from aipass_git.agents.registry import Registry
from aipass_git.core import git, names
from aipass_git.core.errors import RefusedError
from aipass_git.core.names import HUMAN
from aipass_git.core.repo import Repo
from aipass_git.store.objects import Ident

AGENT_ENV = "AIPASS_AGENT"
# Agents' commits and mail carry `<name>@aipass.invalid`: a domain that never resolves
# (RFC 2606), so `git log --author=@aipass.invalid` lists exactly the agents' work.
AGENT_EMAIL_DOMAIN = "aipass.invalid"


@dataclass(frozen=True)
class Speaker:
    name: str  # an agent name, or "human"
    author: Ident  # who the commits are by
    display: str  # "@quality", or "@human (Ann Example)"
    acting_for: str | None = None  # with --as: the identity this speaker acts as
    real: str | None = None  # with --as: who really typed the command

    @property
    def is_human(self) -> bool:
        return self.name == HUMAN


def desk_of(repo: Repo) -> str | None:
    """The agent whose desk this worktree is, judged by its checked-out branch."""
    try:
        head = (repo.git_dir / "HEAD").read_text(encoding="utf-8").strip()
    except OSError:
        return None
    prefix = "ref: refs/heads/"
    return desk.agent_of(head[len(prefix):]) if head.startswith(prefix) else None


def agent_ident(name: str) -> Ident:
    return Ident(name, f"{name}@{AGENT_EMAIL_DOMAIN}")


def agent_of_email(email: str) -> str | None:
    """The agent an identity's EMAIL belongs to, or None for anyone else."""
    name, _, domain = email.partition("@")
    return name if domain == AGENT_EMAIL_DOMAIN and names.is_valid(name) else None


def resolve(
    repo: Repo,
    registry: Registry,
    *,
    orchestrator: str,
    act_as: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Speaker:
    env = os.environ if env is None else env
    at_desk = desk_of(repo)
    claimed = names.strip_at(env.get(AGENT_ENV, "").strip())
    if claimed:
        if at_desk is not None and at_desk != claimed:
            raise RefusedError(
                f"{AGENT_ENV}={claimed} but this is the desk of @{at_desk}",
                f"an agent speaks only from its own desk; unset {AGENT_ENV} or run from @{claimed}'s desk",
            )
        speaker = _agent(registry, claimed, f"{AGENT_ENV}={claimed!r}")
    elif at_desk is not None:
        speaker = _agent(registry, at_desk, f"the desk branch {desk.branch_for(at_desk)}")
    else:
        speaker = human(repo)
    if act_as is None:
        return speaker
    return _acting(registry, speaker, act_as, orchestrator)


def human(repo: Repo) -> Speaker:
    """The human at the keyboard, as git knows them."""
    name, email = git.user_ident(repo.root)
    return Speaker(HUMAN, Ident(name, email), f"@{HUMAN} ({name})")


def agent_speaker(registry: Registry, name: str) -> Speaker:
    """An active agent speaking for itself (the tool acting on its behalf included)."""
    return _agent(registry, name, f"@{names.strip_at(name)}")


def _agent(registry: Registry, name: str, source: str) -> Speaker:
    try:
        agent = registry.resolve(name)
    except RefusedError as exc:
        raise RefusedError(f"the sender from {source} is not an active agent: {exc.message}", exc.hint) from None
    return Speaker(agent.name, agent_ident(agent.name), f"@{agent.name}")


def _acting(registry: Registry, speaker: Speaker, act_as: str, orchestrator: str) -> Speaker:
    target = names.strip_at(act_as)
    policy.require_may_act_as(speaker.name, target, orchestrator)
    agent = registry.resolve(target)
    if agent.name == speaker.name:
        return speaker
    return Speaker(
        agent.name,
        speaker.author,
        f"@{agent.name} (by {speaker.display})",
        acting_for=agent.name,
        real=speaker.name,
    )
