"""A session: one command's repository, config, agents and speaker, built once.

Everything that acts (sends mail, merges, records memory) takes a session, so who is
speaking is decided in one place (identity.py) and checked in one place (policy.py).
Code that acts for an agent (the supervisor answering for it, the merge queue telling
an author) asks for `session.as_agent(name)`, never forges an environment.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from aipass_git.agents import identity
from aipass_git.agents.identity import Speaker
from aipass_git.agents.registry import Registry
from aipass_git.core import config as config_mod
from aipass_git.core.config import Config
from aipass_git.core.names import HUMAN
from aipass_git.core.repo import Repo


@dataclass(frozen=True)
class Session:
    repo: Repo
    config: Config
    registry: Registry
    speaker: Speaker

    @classmethod
    def open(cls, repo: Repo, *, act_as: str | None = None) -> "Session":
        """Who runs this command (AIPASS_AGENT, the desk, or the human), maybe acting as ACT_AS."""
        config = config_mod.load(repo)
        registry = Registry(repo)
        speaker = identity.resolve(repo, registry, orchestrator=config.orchestrator, act_as=act_as)
        return cls(repo, config, registry, speaker)

    @classmethod
    def of_agent(cls, repo: Repo, name: str) -> "Session":
        """The tool acting for the active agent NAME, whoever started the process."""
        config = config_mod.load(repo)
        registry = Registry(repo)
        return cls(repo, config, registry, identity.agent_speaker(registry, name))

    @classmethod
    def of_human(cls, repo: Repo) -> "Session":
        """The human, whatever AIPASS_AGENT says (the demo speaks for them)."""
        config = config_mod.load(repo)
        return cls(repo, config, Registry(repo), identity.human(repo))

    @classmethod
    def of_orchestrator(cls, repo: Repo) -> "Session":
        """The orchestrator (an agent, or the human), whoever started the process: who
        advances plans, merges their PRs and acts on the repository's rules."""
        config = config_mod.load(repo)
        registry = Registry(repo)
        speaker = identity.human(repo) if config.orchestrator == HUMAN else identity.agent_speaker(registry, config.orchestrator)
        return cls(repo, config, registry, speaker)

    def as_agent(self, name: str) -> "Session":
        return replace(self, speaker=identity.agent_speaker(self.registry, name))

    @property
    def orchestrator(self) -> str:
        return self.config.orchestrator
