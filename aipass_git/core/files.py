"""Reading and writing the repository's own documents (`.aipass/...`) without following a
symbolic link.

A link inside `.aipass/` could make aipass-git read a file outside the repository (and
commit its content: an archive linked to /etc/passwd) or write through to one. So every
document path is checked from the top of the worktree down: a link anywhere on the way
is refused (exit 2), never followed; the audit and `doctor` report such links too.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from aipass_git.core.errors import RefusedError


def checked(root: Path, rel: str) -> Path:
    """ROOT/REL, refused when it or a folder on the way from ROOT is a symbolic link."""
    path = root
    for part in PurePosixPath(rel).parts:
        path = path / part
        if path.is_symlink():
            shown = path.relative_to(root).as_posix()
            raise RefusedError(
                f"{shown} is a symbolic link; aipass-git does not follow links in its documents",
                f"replace {shown} with the real file or folder (if git tracks the link: git rm --cached {shown})",
            )
    return path


def read(root: Path, rel: str) -> bytes | None:
    """The bytes of the document ROOT/REL, or None when there is none (links refused)."""
    try:
        return checked(root, rel).read_bytes()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None


def entries_under(top: Path):
    """Every directory entry at any depth under TOP, links not followed (they are entries
    themselves). scandir, not Path.rglob: a thousand agent folders are a few thousand
    entries, and an entry knows whether it is a link or a folder without a stat."""
    pending = [str(top)]
    while pending:
        try:
            with os.scandir(pending.pop()) as entries:
                for entry in entries:
                    yield entry
                    if entry.is_dir(follow_symlinks=False):
                        pending.append(entry.path)
        except (FileNotFoundError, NotADirectoryError):
            continue


def links_under(root: Path, rel: str) -> list[str]:
    """Every symbolic link at or under ROOT/REL (not followed), as paths relative to ROOT."""
    top = root / rel
    if top.is_symlink():
        return [rel]
    if not top.is_dir():
        return []
    found = [os.path.relpath(entry.path, root).replace(os.sep, "/") for entry in entries_under(top) if entry.is_symlink()]
    return sorted(found)


def stamps(paths: list[Path]) -> tuple:
    """(mtime, size) of each path, None for one that is missing: what changed since the
    last look, for a watcher, at a stat per path and no read."""
    out = []
    for p in paths:
        try:
            st = p.stat()
            out.append((st.st_mtime_ns, st.st_size))
        except OSError:
            out.append(None)
    return tuple(out)


def event_ref_folders(common_dir: Path) -> list[Path]:
    """Where event-ref writes show as mtimes: the loose ref folders and packed-refs."""
    return [common_dir / "refs" / "aipass" / kind for kind in ("mail", "prs", "plans", "claims")] + [common_dir / "packed-refs"]

