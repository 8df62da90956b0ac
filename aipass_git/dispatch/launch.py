"""Starting a supervisor: a detached process that outlives the command that started it."""

from __future__ import annotations

import os
import subprocess

from aipass_git.core.repo import Repo
from aipass_git.core.program import ENV as PROGRAM_ENV, module_argv, program
from aipass_git.dispatch.environment import REPO_POINTERS
from aipass_git.dispatch.runtime import Runtime


def start_supervisor(repo: Repo, agent: str) -> int:
    """Start `python -m aipass_git.dispatch.supervisor ROOT AGENT`; returns its pid. It
    leaves at once when another supervisor already runs the agent's session."""
    log_path = Runtime(repo).state_path(agent).parent / "supervisor.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    # a hook's GIT_DIR and friends would point the supervisor's git at the wrong worktree
    env = {k: v for k, v in os.environ.items() if k not in REPO_POINTERS}
    exe = program()
    if exe:
        env[PROGRAM_ENV] = exe
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [*module_argv("aipass_git.dispatch.supervisor"), str(repo.root), agent],
            cwd=repo.root, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            start_new_session=True,  # detached: the caller may exit, the session goes on
        )
    return proc.pid
