"""Desks: each agent's own git worktree on branch `aipass/<agent>`.

Parallel agents never share a working tree or an index. A desk is created from the base
branch on first use; a clean desk whose branch has been merged into the base is brought
up to date before the next wake; a dirty one is left alone, and the caller is told.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aipass_git.core import git
from aipass_git.core.config import Config
from aipass_git.core.errors import AipassError, RefusedError
from aipass_git.core.repo import Repo

BRANCH_PREFIX = "aipass/"


def branch_for(agent: str) -> str:
    """The desk branch of AGENT: `aipass/<agent>`."""
    return BRANCH_PREFIX + agent


def agent_of(branch: str) -> str | None:
    """The agent whose desk branch BRANCH is (a short branch name), or None."""
    return branch[len(BRANCH_PREFIX):] or None if branch.startswith(BRANCH_PREFIX) else None


@dataclass
class DeskReport:
    path: Path
    created: bool = False
    updated: bool = False
    dirty: bool = False
    note: str = ""


class Desk:
    def __init__(self, repo: Repo, config: Config, agent: str) -> None:
        self.repo = repo
        self.config = config
        self.agent = agent
        self.branch = branch_for(agent)
        root = config.raw.get("desks", {}).get("root")
        base = (repo.root / root) if root else (repo.runtime_dir / "desks")
        self.path = (base / agent).resolve()

    def exists(self) -> bool:
        return (self.path / ".git").exists()

    def head(self) -> str | None:
        return git.head_commit(self.path) if self.exists() else None

    def activity(self) -> tuple:
        """A cheap sign of work on the desk, polled while an agent runs: it changes when
        the agent stages files or commits (the worktree's index and HEAD reflog)."""
        git_dir = self._git_dir()
        sign = []
        for name in ("index", "logs/HEAD", "HEAD"):
            try:
                st = (git_dir / name).stat()
                sign.append((st.st_mtime_ns, st.st_size))
            except OSError:
                sign.append(None)
        return tuple(sign)

    def _git_dir(self) -> Path:
        """The worktree's own git dir, named by its `.git` file (`gitdir: ...`)."""
        dot_git = self.path / ".git"
        try:
            text = dot_git.read_text(encoding="utf-8")
        except (IsADirectoryError, OSError):
            return dot_git
        path = Path(text.partition("gitdir:")[2].strip())
        return path if path.is_absolute() else (self.path / path).resolve()

    def ensure(self) -> DeskReport:
        """The desk, created or brought up to date as the rules above say."""
        base = self.config.base_branch
        if git.resolve_commit(self.repo.root, f"refs/heads/{base}") is None:
            raise RefusedError(
                f"the base branch {base!r} does not exist or has no commits",
                "commit something on it first, or set base_branch in .aipass/config.yaml",
            )
        if not self.exists():
            return self._create(base)
        report = DeskReport(self.path)
        if git.is_dirty(self.path, untracked=True):
            report.dirty = True
            report.note = f"the desk has uncommitted changes; it was not brought up to date with {base}"
            return report
        merged = git.is_ancestor(self.path, self.branch, base)
        behind = git.resolve_commit(self.path, self.branch) != git.resolve_commit(self.path, base)
        if merged and behind:
            git.fast_forward(self.path, base)
            report.updated = True
            report.note = f"the desk was brought up to date with {base}"
        return report

    def _create(self, base: str) -> DeskReport:
        from filelock import FileLock  # deferred: ~40 ms cold; only a failed desk creation locks

        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            return self._add(base)  # desks of different agents are created side by side
        except AipassError:
            pass
        # A desk folder deleted by hand leaves a stale worktree entry: prune, then retry.
        # One prune at a time, or it removes the half-registered worktree another adds.
        lock_path = self.repo.runtime_dir / "locks" / "desks.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(lock_path), timeout=120):
            if self.exists():
                return DeskReport(self.path)
            git.prune_worktrees(self.repo.root)
            return self._add(base)

    def _add(self, base: str) -> DeskReport:
        has_branch = git.resolve_commit(self.repo.root, f"refs/heads/{self.branch}") is not None
        try:
            git.add_worktree(self.repo.root, self.path, self.branch, start=None if has_branch else base)
        except AipassError as exc:
            raise AipassError(f"could not create the desk of @{self.agent} at {self.path}: {exc.message}",
                              "check `git worktree list`; remove a stale entry with `git worktree prune`") from None
        return DeskReport(self.path, created=True, note=f"a new desk on branch {self.branch}")
