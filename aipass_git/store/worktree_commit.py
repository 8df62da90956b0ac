"""Commit a set of files on the branch checked out in a worktree, all or nothing.

Used for the committed `.aipass/` documents (config, passports, memory and its
archive). The commit is built without the user's index: the tree in-process from the
branch's tip (only the trees on the changed paths are rewritten), the commit by `git
commit-tree` (so the user's signing settings apply), then the branch moves by
compare-and-swap. Only then are the files written into the work tree and their entries
in the index refreshed; whatever else the user has staged stays staged and out of it.

The user's pre-commit hook still has its say: it runs against a private index holding
the new tree (as `git commit --only` does), and its refusal leaves everything as it was.

A crash cannot leave half of it: before the branch moves, the write is journalled
(journal.py), and whoever takes this worktree's lock next brings the work tree and the
index up to the branch for those paths (or drops the record when the branch never
moved). Git's own locks that a killed git left behind are removed (locks.py). A file
in the work tree is never written unless the branch already holds it, so the next read
of memory.json and its archive sees one consistent commit.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from aipass_git.core import faults, git
from aipass_git.core.canonical import write_atomic
from aipass_git.core.errors import AipassError
from aipass_git.core.files import checked
from aipass_git.core.repo import Repo
from aipass_git.store import locks
from aipass_git.store.journal import Entry, Journal
from aipass_git.store.objects import Ident
from aipass_git.store.refs import TOOL_WRITE, move
from aipass_git.store.events import EventStore
from aipass_git.store.tree_view import TreeView

# Marks commits made by the tool, for hooks that must tell them from an agent's own.
TOOL_ENV = {"AIPASS_TOOL_COMMIT": "1"}
KIND = "worktree"
ATTEMPTS = 10  # the branch moved under us (the user committed): build again on the new tip

_LOCKS: dict[str, object] = {}


@contextmanager
def worktree_lock(repo: Repo) -> Iterator[None]:
    """Serialise aipass's read-modify-commit cycles in one worktree (reentrant).

    Callers that read a document, change it and commit it hold this around all three,
    so that two processes adding to the same memory.json both land. Taking it first
    finishes a commit of this worktree that a crash interrupted.
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
        if lock.lock_counter == 1:
            finish_interrupted(repo)
        yield
    finally:
        lock.release()


def commit_files(repo: Repo, files: dict[str, bytes | None], message: str, *, author: Ident | None = None) -> str | None:
    """Commit FILES (relative path -> content, None deletes) with MESSAGE on the checked-out
    branch, then bring the work tree and the index along for those paths.

    Returns the new commit id, or None when the branch already held exactly these files
    (then only the work tree and the index are brought in line).
    """
    paths = sorted(files)
    for path in paths:
        checked(repo.root, path)  # refused before anything is written, never halfway
    with worktree_lock(repo), EventStore(repo) as store:
        branch = git.current_branch(repo.root)
        ref = f"refs/heads/{branch}" if branch else "HEAD"
        for _ in range(ATTEMPTS):
            head = git.head_commit(repo.root)
            base = store.tree_of(head) if head else None
            view = TreeView(store, base)
            for path in paths:
                if files[path] is None:
                    view.delete(path)
                else:
                    view.write(path, files[path])
            tree = view.flush()
            if tree == base:
                _sync(repo, paths, files)
                return None
            _pre_commit_hook(repo, tree)
            commit = _commit_tree(repo, tree, head, message, author)
            with Journal(repo).record(KIND, {"git_dir": str(repo.git_dir), "ref": ref, "old": head,
                                             "new": commit, "paths": paths}):
                faults.point("commit-written")
                if not move(repo.root, ref, commit, head, message.splitlines()[0]):
                    continue  # the branch moved: nothing of ours landed; build on its new tip
                faults.point("branch-moved")
                _sync(repo, paths, files)
            return commit
        raise AipassError(f"{ref} kept moving while aipass committed to it",
                          "another process commits on this branch in a loop; stop it and retry")


def _commit_tree(repo: Repo, tree: str, parent: str | None, message: str, author: Ident | None) -> str:
    env = dict(TOOL_ENV)
    if author is not None:
        env.update({"GIT_AUTHOR_NAME": author.name, "GIT_AUTHOR_EMAIL": author.email})
        if git.ident(repo.root, "COMMITTER", env) is None:
            # no identity of the machine (CI, containers): the author commits too, as the
            # agent's own commits do (dispatch/environment.py)
            env.update({"GIT_COMMITTER_NAME": author.name, "GIT_COMMITTER_EMAIL": author.email})
    try:
        return git.commit_tree(repo.root, tree, [parent] if parent else [], message, env=env)
    except AipassError as exc:
        exc.hint = exc.hint or ("git refused the commit (signing, or no user.name/user.email); "
                                "fix that and run the command again: nothing was changed")
        raise


def _pre_commit_hook(repo: Repo, tree: str) -> None:
    """Run the user's pre-commit hook, if any, on a private index of TREE."""
    if not os.access(git.hooks_dir(repo.root) / "pre-commit", os.X_OK):
        return
    index = repo.git_dir / f"aipass-index-{os.getpid()}"
    env = {**TOOL_ENV, "GIT_INDEX_FILE": str(index)}
    try:
        git.read_tree(repo.root, tree, env=env)
        proc = git.run_hook(repo.root, "pre-commit", env=env)
    finally:
        for leftover in (index, index.with_name(index.name + ".lock")):
            try:
                leftover.unlink()
            except FileNotFoundError:
                pass
    if proc.returncode != 0:
        said = (proc.stderr + proc.stdout).decode("utf-8", "replace").strip().splitlines()
        raise AipassError(f"the pre-commit hook refused the commit: {said[-1] if said else f'exit {proc.returncode}'}",
                          "fix what it reports, or commit with the hook's consent; nothing was changed")


def _sync(repo: Repo, paths: list[str], files: dict[str, bytes | None]) -> None:
    """Work tree files, then their index entries, as the branch now holds them."""
    for i, path in enumerate(paths):
        if i:
            faults.point("between-files")
        _put(repo.root / path, files[path], repo.root)
    faults.point("files-written")
    _refresh_index(repo, paths)


def _refresh_index(repo: Repo, paths: list[str]) -> None:
    """The index entries of PATHS from the work tree (the one step that takes index.lock)."""
    proc = locks.run_git(["update-index", "--add", "--remove", "--", *paths], repo.root, env={**TOOL_ENV, **TOOL_WRITE})
    if proc.returncode != 0:
        said = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise AipassError(f"committed, but git could not update the index: {said[-1] if said else 'no output'}",
                          "the next aipass command in this worktree finishes it (or: git aipass doctor --fix)")


def finish_interrupted(repo: Repo) -> int:
    """Bring this worktree's files and index up to its branch for commits whose writer
    died between moving the branch and writing the files; returns how many."""
    journal = Journal(repo)
    if not journal.has_records():
        return 0
    done = 0
    for entry in journal.orphans(KIND):
        if entry.doc.get("git_dir") != str(repo.git_dir):
            entry.release()  # another worktree's: its own next writer finishes it
            continue
        _finish(repo, entry)
        done += 1
    return done


def _finish(repo: Repo, entry: Entry) -> None:
    doc = entry.doc
    paths = list(doc.get("paths", []))
    tip = git.resolve_commit(repo.root, doc.get("ref", "HEAD"))
    new = doc.get("new")
    if paths and tip and new and tip != doc.get("old") and git.is_ancestor(repo.root, new, tip):
        files = {p: git.blob_at(repo.root, tip, p) for p in paths}
        # a file the user changed since the crash is theirs; one still as it was, ours
        ours = [p for p in paths if _read(repo.root / p) in (git.blob_at(repo.root, doc.get("old") or "", p), files[p])]
        if ours:
            _sync(repo, ours, files)
    entry.close()


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except (FileNotFoundError, IsADirectoryError):
        return None


def _put(path: Path, data: bytes | None, root: Path) -> None:
    checked(root, path.relative_to(root).as_posix())  # never write through a link
    if data is not None:
        write_atomic(path, data)
        return
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    folder = path.parent
    while folder != root and folder.is_dir():  # git keeps no empty folders; neither do we
        try:
            os.rmdir(folder)
        except OSError:
            return
        folder = folder.parent
