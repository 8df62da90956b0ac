"""Who is speaking (DESIGN.md §5).

In order: the `AIPASS_AGENT` variable a wake sets; else the agent whose desk (a worktree on
branch `aipass/<name>`) the command runs in; else the human at the keyboard (git's user).
A claimed identity that contradicts the desk is refused: a wrong sender is worse than none.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping

from aipass_git.agents.registry import Registry
from aipass_git.core import git
from aipass_git.core.errors import RefusedError
from aipass_git.core.repo import Repo
from aipass_git.mail.message import HUMAN
from aipass_git.store.objects import Ident

DESK_PREFIX = "aipass/"
AGENT_ENV = "AIPASS_AGENT"


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
    prefix = f"ref: refs/heads/{DESK_PREFIX}"
    if head.startswith(prefix):
        return head[len(prefix):]
    return None


def agent_ident(name: str) -> Ident:
    return Ident(name, f"{name}@aipass.invalid")


def resolve(
    repo: Repo,
    registry: Registry,
    *,
    orchestrator: str,
    act_as: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Speaker:
    env = os.environ if env is None else env
    desk = desk_of(repo)
    claimed = env.get(AGENT_ENV, "").strip()
    if claimed.startswith("@"):
        claimed = claimed[1:]
    if claimed:
        if desk is not None and desk != claimed:
            raise RefusedError(
                f"{AGENT_ENV}={claimed} but this is the desk of @{desk}",
                f"an agent speaks only from its own desk; unset {AGENT_ENV} or run from @{claimed}'s desk",
            )
        speaker = _agent(registry, claimed, f"{AGENT_ENV}={claimed}")
    elif desk is not None:
        speaker = _agent(registry, desk, f"the desk branch {DESK_PREFIX}{desk}")
    else:
        name, email = git.user_ident(repo.root)
        speaker = Speaker(HUMAN, Ident(name, email), f"@{HUMAN} ({name})")
    if act_as is None:
        return speaker
    return _acting(registry, speaker, act_as, orchestrator)


def _agent(registry: Registry, name: str, source: str) -> Speaker:
    try:
        agent = registry.resolve(name)
    except RefusedError as exc:
        raise RefusedError(f"the sender from {source} is not an active agent: {exc.message}", exc.hint) from None
    return Speaker(agent.name, agent_ident(agent.name), f"@{agent.name}")


def _acting(registry: Registry, speaker: Speaker, act_as: str, orchestrator: str) -> Speaker:
    if not (speaker.is_human or speaker.name == orchestrator):
        raise RefusedError(
            f"--as is refused for @{speaker.name}",
            "only the human and the orchestrator may act for another agent",
        )
    target = act_as[1:] if act_as.startswith("@") else act_as
    if target == HUMAN:
        raise RefusedError("--as @human is not allowed", "the human speaks for themself: drop --as")
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
