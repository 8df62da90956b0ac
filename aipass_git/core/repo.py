"""Finding the repository a command runs in, and where aipass keeps things in it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from aipass_git.core import git
from aipass_git.core.errors import NotARepositoryError, NotInitialisedError

AIPASS_DIR = ".aipass"
CONFIG_FILE = f"{AIPASS_DIR}/config.yaml"
AGENTS_DIR = f"{AIPASS_DIR}/agents"


@dataclass(frozen=True)
class Repo:
    """A git repository with a working tree, seen from one of its worktrees."""

    root: Path  # top of the current worktree
    git_dir: Path  # this worktree's git dir
    common_dir: Path  # shared by all worktrees: refs, objects, aipass runtime state
    object_format: str = "sha1"  # or sha256, per the repository's extensions.objectFormat

    @property
    def hash_name(self) -> str:
        return self.object_format

    @property
    def hash_len(self) -> int:
        return 32 if self.object_format == "sha256" else 20

    @property
    def objects_dir(self) -> Path:
        return self.common_dir / "objects"

    @property
    def config_path(self) -> Path:
        return self.root / CONFIG_FILE

    @property
    def agents_dir(self) -> Path:
        return self.root / AGENTS_DIR

    @property
    def runtime_dir(self) -> Path:
        """Never committed: locks, run state, event log, vector index, desks."""
        return self.common_dir / "aipass"

    def rel(self, path: Path) -> str:
        """PATH relative to the worktree root, with forward slashes, for messages and git."""
        return path.relative_to(self.root).as_posix()

    def require_initialised(self) -> None:
        if not self.config_path.is_file():
            raise NotInitialisedError(
                f"aipass-git is not set up in {self.root} ({CONFIG_FILE} is missing)",
                "run: git aipass init",
            )


def discover(cwd: Path | str | None = None) -> Repo:
    """The repository around CWD; refuses bare repositories and git dirs."""
    cwd = Path(cwd or os.getcwd())
    # One spawn answers every question; --show-toplevel goes last because it fails outside
    # a working tree, after git has already printed the answers before it.
    proc = git.run(
        [
            "rev-parse",
            "--path-format=absolute",
            "--show-object-format",
            "--is-bare-repository",
            "--git-dir",
            "--git-common-dir",
            "--show-toplevel",
        ],
        cwd,
        check=False,
    )
    lines = proc.stdout.decode("utf-8", "surrogateescape").splitlines()
    stderr = proc.stderr.decode("utf-8", "replace")
    object_format, lines = (lines[0], lines[1:]) if lines else ("sha1", lines)
    if proc.returncode != 0 and len(lines) < 3:
        raise NotARepositoryError(
            f"not a git repository: {cwd}",
            "run this inside a git repository, or create one with: git init",
        )
    if lines[0] == "true":
        raise NotARepositoryError(
            f"{lines[1]} is a bare repository; aipass-git needs a working tree",
            "clone it (git clone <bare> <dir>) and run the command in the clone",
        )
    if proc.returncode != 0 or len(lines) < 4:
        detail = stderr.strip().splitlines()
        raise NotARepositoryError(
            f"not inside a working tree ({detail[-1] if detail else cwd})",
            "run the command from the repository's working tree, not from its .git folder",
        )
    return Repo(root=Path(lines[3]), git_dir=Path(lines[1]), common_dir=Path(lines[2]), object_format=object_format)
