"""Commit a set of files on the branch checked out in a worktree, all or nothing.

Used for the committed `.aipass/` documents (config, passports, memory). The files are
written, staged and committed with `git commit --only`, so whatever else the user has
staged stays staged and out of the commit, their hooks and signing settings apply, and
git's own ref lock makes the branch update a compare-and-swap. When any step fails, the
files and the index are put back as they were.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from aipass_git.core import git
from aipass_git.core.canonical import write_atomic
from aipass_git.core.errors import AipassError, GitError
from aipass_git.core.repo import Repo

# Marks commits made by the tool, for hooks that must tell them from an agent's own.
TOOL_ENV = {"AIPASS_TOOL_COMMIT": "1"}


_LOCKS: dict[str, object] = {}


@contextmanager
def worktree_lock(repo: Repo) -> Iterator[None]:
    """Serialise aipass's read-modify-commit cycles in one worktree (reentrant).

    Callers that read a document, change it and commit it hold this around all three,
    so that two processes adding to the same memory.json both land.
    """
    from filelock import FileLock, Timeout  # deferred: only writers pay for it

    path = str(repo.git_dir / "aipass-commit.lock")
    lock = _LOCKS.setdefault(path, FileLock(path))
    try:
        lock.acquire(timeout=60)
    except Timeout:
        raise AipassError(
            "another aipass command is committing in this worktree",
            f"wait for it to finish; if none is running, remove {path}",
        ) from None
    try:
        yield
    finally:
        lock.release()


def commit_files(repo: Repo, files: dict[str, bytes | None], message: str) -> str | None:
    """Write FILES (relative path -> content, None deletes) and commit them with MESSAGE.

    Returns the new commit id, or None when the files already matched HEAD (nothing is
    committed then, and nothing on disk changes).
    """
    paths = sorted(files)
    with worktree_lock(repo):
        previous = {p: _read(repo.root / p) for p in paths}
        try:
            for p in paths:
                _put(repo.root / p, files[p])
            return _stage_and_commit(repo, paths, message)
        except BaseException:
            _restore(repo, previous)
            raise


def _stage_and_commit(repo: Repo, paths: list[str], message: str) -> str | None:
    git.run(
        ["add", "--all", "--", *paths],
        repo.root,
        hint="check that .gitignore does not exclude .aipass/ and that no other git command is running",
    )
    staged = git.run(["diff", "--cached", "--quiet", "--", *paths], repo.root, check=False)
    if staged.returncode == 0:
        return None
    try:
        git.run(["commit", "--quiet", "--only", "-m", message, "--", *paths], repo.root, env=TOOL_ENV)
    except GitError as exc:
        exc.hint = exc.hint or (
            "git refused the commit (a hook, signing, or no user.name/user.email); "
            "fix that and run the command again: nothing was changed"
        )
        raise
    return git.output(["rev-parse", "HEAD"], repo.root)


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _put(path: Path, data: bytes | None) -> None:
    if data is None:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
    else:
        write_atomic(path, data)


def _restore(repo: Repo, previous: dict[str, bytes | None]) -> None:
    """Undo a failed commit: old contents back on disk, the paths unstaged."""
    for p, data in previous.items():
        _put(repo.root / p, data)
        if data is None:
            _remove_empty_parents(repo.root / p, repo.root)
    paths = list(previous)
    if git.head_commit(repo.root):
        git.run(["reset", "--quiet", "--", *paths], repo.root, check=False)
    else:
        git.run(["rm", "--cached", "--quiet", "--ignore-unmatch", "-r", "--", *paths], repo.root, check=False)


def _remove_empty_parents(path: Path, stop: Path) -> None:
    parent = path.parent
    while parent != stop and parent.is_dir():
        try:
            os.rmdir(parent)
        except OSError:
            return
        parent = parent.parent
