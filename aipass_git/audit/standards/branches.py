"""Branch rules: agents commit only on their own desk branches."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from aipass_git.agents import desk
from aipass_git.agents.identity import agent_of_email
from aipass_git.audit.engine import Problem, standard
from aipass_git.core import git


def agent_commits(root: Path, revs: list[str]) -> Iterator[tuple[str, str, str]]:
    """(commit, agent, subject) of each commit on the first-parent line of REVS that is not
    a merge and is authored by an agent: work that reached a branch without a merge (merges
    by the orchestrator bring agents' commits in legitimately). The audit's branch rule and
    the pre-push guard both ask this, so `--no-verify` past one meets the other."""
    for commit, email, subject in git.log(root, ["--first-parent", "--no-merges", *revs], ["%H", "%ae", "%s"]):
        agent = agent_of_email(email)
        if agent is not None:
            yield commit, agent, subject


HINT = f"agents work on {desk.branch_for('<name>')} and open a PR; revert it and redo it on the desk"


@standard("branches.no-agent-commits-on-base", "no agent identity authored commits on the base branch")
def agent_commits_on_base(ctx):
    base = ctx.config.base_branch
    if git.resolve_commit(ctx.repo.root, f"refs/heads/{base}") is None:
        return
    for commit, agent, subject in agent_commits(ctx.repo.root, [f"refs/heads/{base}"]):
        yield Problem(f"refs/heads/{base}", f"commit {commit[:10]} ({subject[:60]}) was made by @{agent} directly on {base}", HINT)


@standard("branches.desk-owner", "commits on an agent's desk branch are by that agent or the human")
def desk_owner(ctx):
    base = ctx.config.base_branch
    names = {a.name for a in ctx.agents}
    # one walk over every desk branch (never a git process per agent): %S names the branch
    for source, commit, email, subject in git.log(
            ctx.repo.root, ["--source", f"--branches={desk.branch_for('*')}", "--not", f"refs/heads/{base}"],
            ["%S", "%H", "%ae", "%s"]):
        owner = desk.agent_of(source.removeprefix("refs/heads/"))
        author = agent_of_email(email)
        if owner in names and author is not None and author != owner:
            yield Problem(f"refs/heads/{desk.branch_for(owner)}", f"commit {commit[:10]} ({subject[:60]}) is by @{author}",
                          "an agent commits only on its own desk; mail the owner instead")


STANDARDS = [agent_commits_on_base, desk_owner]
