"""Branch rules: agents commit only on their own desk branches."""

from __future__ import annotations

from aipass_git.audit.engine import Problem, standard
from aipass_git.core import git

AGENT_EMAIL = "@aipass.invalid"


@standard("branches.no-agent-commits-on-base", "no agent identity authored commits on the base branch")
def agent_commits_on_base(ctx):
    base = ctx.config.base_branch
    if git.run(["rev-parse", "--verify", "--quiet", f"refs/heads/{base}"], ctx.repo.root, check=False).returncode:
        return
    # first-parent: merges by the orchestrator bring agents' commits in legitimately
    out = git.run(["log", "--first-parent", "--no-merges", "--format=%H%x1f%ae%x1f%s", f"refs/heads/{base}", "--"],
                  ctx.repo.root, check=False).stdout.decode()
    for line in out.splitlines():
        commit, email, subject = line.split("\x1f", 2)
        if email.endswith(AGENT_EMAIL):
            agent = email[: -len(AGENT_EMAIL)]
            yield Problem(f"refs/heads/{base}", f"commit {commit[:10]} ({subject[:60]}) was made by @{agent} directly on {base}",
                          "agents work on aipass/<name> and open a PR; revert it and redo it on the desk")


@standard("branches.desk-owner", "commits on an agent's desk branch are by that agent or the human")
def desk_owner(ctx):
    base = ctx.config.base_branch
    names = {a.name for a in ctx.agents}
    # one walk over every desk branch (never a git process per agent): %S names the branch
    out = git.run(["log", "--source", "--format=%S%x1f%H%x1f%ae%x1f%s", "--branches=aipass/*",
                   "--not", f"refs/heads/{base}", "--"], ctx.repo.root, check=False).stdout.decode()
    for line in out.splitlines():
        source, commit, email, subject = line.split("\x1f", 3)
        owner = source.rsplit("aipass/", 1)[-1]
        if owner in names and email.endswith(AGENT_EMAIL) and email[: -len(AGENT_EMAIL)] != owner:
            yield Problem(f"refs/heads/aipass/{owner}", f"commit {commit[:10]} ({subject[:60]}) is by @{email[:-len(AGENT_EMAIL)]}",
                          "an agent commits only on its own desk; mail the owner instead")


STANDARDS = [agent_commits_on_base, desk_owner]
