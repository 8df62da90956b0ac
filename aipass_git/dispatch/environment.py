"""The environment a woken CLI runs in: who it is, where aipass-git is, which git identity.

The agent's commits are authored as the agent (the identity its mail uses), so
`git log --author=<agent>` tells its work from the human's. The committer stays the
machine's git identity, or becomes the agent when git has none; either way it is given
in GIT_COMMITTER_* because a CLI may hide git's config from its tools (Gemini CLI runs
them with GIT_CONFIG_GLOBAL=/dev/null). Only the variables that would point git at
another repository are removed; the rest of the caller's environment passes through.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from aipass_git.core import git
from aipass_git.core.program import ENV as PROGRAM_ENV, program
from aipass_git.agents.identity import AGENT_ENV, agent_ident

# set by git for hooks and by users; each would make the agent's git act on another
# repository, work tree or index than its desk
REPO_POINTERS = (
    "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR", "GIT_NAMESPACE", "GIT_PREFIX", "GIT_QUARANTINE_PATH", "GIT_SHALLOW_FILE",
    "GIT_GRAFT_FILE", "GIT_REPLACE_REF_BASE", "GIT_INTERNAL_SUPER_PREFIX",
)


def search_path(base: str | None = None) -> str:
    """PATH with this installation first, so the agent's `git aipass` is this one even when
    its venv is not active (and the CLI's shell keeps it: see the codex provider)."""
    first = [str(Path(sys.executable).parent)]
    exe = program()
    if exe and str(Path(exe).parent) not in first:
        first.insert(0, str(Path(exe).parent))
    rest = os.environ.get("PATH", "") if base is None else base
    return os.pathsep.join([*first, rest] if rest else first)


def provider_env(*, desk: Path, repo_root: Path, agent: str, dispatch_id: str,
                 extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in REPO_POINTERS}
    env["PATH"] = search_path(env.get("PATH", ""))
    exe = program()
    if exe:
        env[PROGRAM_ENV] = exe
    env.update({AGENT_ENV: agent, "AIPASS_DISPATCH": dispatch_id, "AIPASS_REPO": str(repo_root)})
    author = agent_ident(agent)
    env["GIT_AUTHOR_NAME"], env["GIT_AUTHOR_EMAIL"] = author.name, author.email
    committer = git.ident(desk, "COMMITTER", env) or (author.name, author.email)
    env["GIT_COMMITTER_NAME"], env["GIT_COMMITTER_EMAIL"] = committer
    env.update(extra or {})
    return env

