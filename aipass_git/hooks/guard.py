"""pre-commit and pre-push: branch rules for agents, and a fast audit of what changes."""

from __future__ import annotations

import os

from aipass_git.audit import documents
from aipass_git.audit.engine import Context, describe, run
from aipass_git.audit.standards import BUILTIN, aipass_files, branches as branch_rules, hygiene, secrets
from aipass_git.claims import claim
from aipass_git.core import config as config_mod, git, names
from aipass_git.core.names import HUMAN
from aipass_git.store.events import EventStore
from aipass_git.core.program import kick_triggers
from aipass_git.core.secrets import find as find_secrets
from aipass_git.core.text import article
from aipass_git.core.repo import Repo
from aipass_git.agents import desk
from aipass_git.agents.identity import AGENT_ENV, desk_of
from aipass_git.dispatch.runtime import Runtime

# what a commit waits for: standards that read only the staged files
ON_COMMIT = [aipass_files.archives_valid, aipass_files.archives_append_only, secrets.in_aipass, secrets.in_files,
             hygiene.conflict_markers]
ON_PUSH = [s for s in BUILTIN if s.scope == "file"] + [aipass_files.archives_valid, secrets.in_aipass]


def acting_agent(repo: Repo) -> str | None:
    """The agent making this commit or push, or None for the human."""
    claimed = names.strip_at(os.environ.get(AGENT_ENV, "").strip())
    return claimed or desk_of(repo)


def pre_commit(repo: Repo) -> list[str]:
    """Reasons to refuse the commit (empty: go ahead)."""
    problems = []
    config = config_mod.load(repo)
    agent = acting_agent(repo)
    branch = git.current_branch(repo.root) or "(detached HEAD)"
    if agent is not None and branch != desk.branch_for(agent):
        where = " (the base branch)" if branch == config.base_branch else ""
        problems.append(f"@{agent} may commit only on its desk branch {desk.branch_for(agent)}, not on {branch}{where}"
                        "\nhint: commit on your desk and open a PR: git aipass pr open")
    problems += _claimed(repo, agent or HUMAN)
    staged = git.staged_files(repo.root)
    ctx = Context(repo, paths=staged, staged=True)
    problems += describe(documents.validate(staged, ctx.read))
    problems += describe(run(ctx, ON_COMMIT))
    return problems


def _claimed(repo: Repo, who: str, touched: list[str] | None = None) -> list[str]:
    """A commit (or a push) that changes a path under someone else's active exclusive
    claim is refused (renames count by both names, deletions too); TOUCHED defaults to
    what the index changes."""
    if not git.list_refs(repo.root, claim.NAMESPACE):
        return []  # nobody claims anything: one for-each-ref is all it costs
    with EventStore(repo) as store:
        claimed = claim.guard_for(store, who)
    if not claimed:
        return []
    found = claimed.first_crossing(git.staged_touched(repo.root) if touched is None else touched)
    return [claim.refusal(*found)] if found else []


ALLOWED_TRAILER = "Aipass-Allowed-Secret:"


def commit_msg(repo: Repo, path: str) -> list[str]:
    """A commit message that looks like it holds a credential, refused: history keeps
    messages forever. A message that says `Aipass-Allowed-Secret: <kind>` goes through."""
    try:
        text = (repo.root / path).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return [f"cannot read the commit message {path}: {exc.strerror}"]
    message = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    if ALLOWED_TRAILER in message:
        return []
    kinds = find_secrets(message)
    return [f"the commit message looks like it holds {article(kinds[0])}"
            f"\nhint: take it out and commit again; if it is not a secret, add the line: {ALLOWED_TRAILER} {kinds[0]}"
            ] if kinds else []


def pre_push(repo: Repo, updates: list[tuple[str, str, str, str]]) -> list[str]:
    """UPDATES are git's stdin lines: (local ref, local oid, remote ref, remote oid)."""
    config = config_mod.load(repo)
    agent = acting_agent(repo)
    problems = []
    changed: set[str] = set()
    touched: list[str] = []  # by every pushed commit, renames by both names: checked against claims once
    for local_ref, local_oid, remote_ref, remote_oid in updates:
        zero = "0" * len(local_oid)
        if agent is not None and remote_ref == f"refs/heads/{config.base_branch}":
            problems.append(f"@{agent} may not push to {remote_ref}: the orchestrator merges into the base branch"
                            "\nhint: push your desk branch and open a PR: git aipass pr open")
        if local_oid == zero:
            continue  # a deletion: nothing to audit
        if local_ref.startswith("refs/aipass/"):
            continue  # events, not work: sync pushes them
        span = [local_oid, "--not", "--remotes"] if remote_oid == zero else [f"{remote_oid}..{local_oid}"]
        if remote_ref == f"refs/heads/{config.base_branch}":
            # whoever pushes: an agent's commit that reached the base branch without a merge
            # (a commit made there with --no-verify, a fast-forward of a desk) is refused
            for commit, author, subject in branch_rules.agent_commits(repo.root, span):
                problems.append(f"commit {commit[:10]} ({subject[:60]}) was made by @{author} directly on "
                                f"{config.base_branch}\nhint: {branch_rules.HINT}")
        paths = git.touched_in_commits(repo.root, span)
        touched += paths
        changed.update(p for p in paths if (repo.root / p).is_file())
    if touched:
        problems += _claimed(repo, agent or HUMAN, touched)
    if changed:
        found = describe(run(Context(repo, paths=sorted(changed)), ON_PUSH))
        if found:  # audit.failed rules hear of it
            branches = sorted({u[0].removeprefix("refs/heads/") for u in updates})
            Runtime(repo).log("audit-failed", agent, branch=", ".join(branches), errors=len(found))
            kick_triggers(repo.root, repo.runtime_dir)
        problems += found
    return problems
