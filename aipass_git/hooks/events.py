"""Hooks that connect git events to aipass: index refresh after merges and checkouts,
and a wake when a dispatch arrives on a mailbox ref from elsewhere (a fetch)."""

from __future__ import annotations

import time

from aipass_git.core import git
from aipass_git.core.program import run_detached
from aipass_git.core.repo import AGENTS_DIR, Repo
from aipass_git.dispatch import recovery
from aipass_git.mail import mailbox
from aipass_git.sync import cycle
from aipass_git.store.worktree_commit import commit_files


def archives_changed(repo: Repo, old: str, new: str) -> bool:
    if not old or not new or set(old) == {"0"}:
        return False
    return any("/archive/" in p or p.endswith("memory.json") for p in git.changed_files(repo.root, old, new, paths=[AGENTS_DIR]))


def overflow_paths(repo: Repo) -> list[str]:
    return [p for p in git.status_paths(repo.root, [AGENTS_DIR]) if "/archive/" in p and p.endswith(".jsonl")]


def commit_overflow_in_background(repo: Repo) -> None:
    """post-merge runs while git still holds the merge state, when no commit can be made:
    a detached process commits the archive lines once the merge has finished."""
    if overflow_paths(repo):
        run_detached(repo.root, "memory", "commit-overflow")


def commit_merge_overflow(repo: Repo, wait_seconds: float = 30.0) -> str | None:
    """The memory merge driver archives what a merge pushed over the caps into the work
    tree (a driver cannot stage); once the merge is over, commit those archive lines."""


    deadline = time.monotonic() + wait_seconds
    while (repo.git_dir / "MERGE_HEAD").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    changed = overflow_paths(repo)
    if not changed:
        return None
    files = {p: (repo.root / p).read_bytes() for p in changed}
    return commit_files(repo, files, "aipass: archive memory overflow from the merge\n\nAipass-Event: memory-archive\n")


def refresh_index_in_background(repo: Repo) -> None:
    """Sync the memory index in a detached process: the hook returns at once, and the
    hook itself never imports chromadb."""
    run_detached(repo.root, "memory", "sync")


def wake_on_mail(repo: Repo, lines: list[str]) -> list[str]:
    """Start supervisors for agents whose mailbox received undone dispatches written here by
    something other than aipass (a fetch straight into refs/aipass/mail/*). Returns them."""
    owners = []
    for line in lines:
        parts = line.split()
        if len(parts) == 3 and parts[2].startswith(mailbox.NAMESPACE) and set(parts[1]) != {"0"}:
            owners.append(parts[2][len(mailbox.NAMESPACE):])
    return recovery.wake_owners(repo, owners, "fetched-dispatch")


def wake_on_fetch(repo: Repo) -> list[str]:
    """After a plain fetch brought a dispatch into the tracking namespace: take the fetched
    mailboxes in (cycle.take_in) and wake their agents. Returns them."""
    moved = cycle.take_in(repo)
    return recovery.wake_owners(repo, [ref[len(mailbox.NAMESPACE):] for ref in moved], "fetched-dispatch")
