"""`git aipass clone URL [DIR]`: `git clone`, then everything a clone needs to take part:
drivers, hooks, the remote's event refs and one sync, so the first `inbox` shows the mail."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from aipass_git.core import git
from aipass_git.core.errors import AipassError, RefusedError
from aipass_git.core.repo import discover
from aipass_git.setup.project_init import InitResult, initialise
from aipass_git.store import remote
from aipass_git.sync import cycle


@dataclass
class Cloned:
    path: Path
    init: InitResult | None  # None: the repository has no aipass set-up to join
    synced: cycle.Synced


def directory_for(url: str) -> str:
    """The folder `git clone URL` would make (its "humanish" part of the URL)."""
    name = re.split(r"[/:\\]", url.rstrip("/\\"))[-1]
    for suffix in (".git", ".bundle"):
        name = name.removesuffix(suffix)
    if not name or name in (".", ".."):
        raise RefusedError(f"cannot tell a folder name from {url!r}", "name one: git aipass clone URL DIR")
    return name


def clone(url: str, directory: Path | None, *, hooks: bool = True) -> Cloned:
    target = (directory or Path(directory_for(url))).absolute()
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise RefusedError(f"{target.name} already exists and is not an empty folder", "name another: git aipass clone URL DIR")
    proc = git.run(["clone", "--quiet", "--", url, str(target)], Path.cwd(), check=False, timeout=remote.NETWORK_SECONDS)
    if proc.returncode != 0:
        lines = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise AipassError(f"git clone {url} failed: {lines[-1] if lines else 'no reason given'}",
                          "check the URL and that you can reach it (git ls-remote URL)")
    repo = discover(target)
    init = initialise(repo, hooks=hooks) if repo.config_path.is_file() else None
    if init is None and git.head_commit(repo.root) is None:
        # git clone warned already; without a checkout there is no set-up to join
        raise RefusedError(f"cloned into {target.name}, but nothing is checked out: the remote's HEAD names a branch it does not have",
                           f"cd {target.name} && git checkout BRANCH && git aipass init && git aipass sync")
    return Cloned(target, init, cycle.sync(repo, "origin"))
