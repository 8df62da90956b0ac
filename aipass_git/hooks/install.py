"""Installing the shims into the hooks folder git actually uses (core.hooksPath included).

A hook that is already there is kept, renamed `<hook>.aipass-chained`, and run first by
the shim; `uninstall` puts it back.
"""

from __future__ import annotations

import os
from pathlib import Path

from aipass_git.core import git, program, resources
from aipass_git.core.errors import RefusedError
from aipass_git.core.repo import Repo

MARKER = "aipass-git hook shim"
HOOKS = {  # hook -> reads standard input
    "pre-commit": False,
    "pre-push": True,
    "post-merge": False,
    "post-checkout": False,
    "reference-transaction": True,
}
CHAINED = ".aipass-chained"


def hooks_dir(repo: Repo) -> Path:
    return git.git_paths(repo.root, "hooks")[0]


def _render(hook: str) -> str:
    shims = resources.hook_shims_dir()
    template = (shims / f"{hook}.sh") if (shims / f"{hook}.sh").is_file() else shims / "shim.sh"
    text = template.read_text(encoding="utf-8")
    return (text.replace("@HOOK@", hook).replace("@AIPASS@", program.command().replace("'", "'\\''"))
            .replace("@STDIN@", "yes" if HOOKS[hook] else "no"))


def is_ours(path: Path) -> bool:
    try:
        return MARKER in path.read_text(encoding="utf-8", errors="replace")
    except (FileNotFoundError, IsADirectoryError):
        return False


def install(repo: Repo) -> list[str]:
    folder = hooks_dir(repo)
    folder.mkdir(parents=True, exist_ok=True)
    done = []
    for hook in HOOKS:
        path = folder / hook
        if path.exists() and not is_ours(path):
            chained = folder / f"{hook}{CHAINED}"
            if chained.exists():
                raise_kept(path, chained)
            os.replace(path, chained)
        tmp = folder / f".{hook}.aipass-tmp"
        tmp.write_text(_render(hook), encoding="utf-8")
        tmp.chmod(0o755)
        os.replace(tmp, path)
        done.append(hook)
    return done


def raise_kept(path: Path, chained: Path) -> None:

    raise RefusedError(
        f"{path} exists and {chained.name} is already taken",
        "merge the two by hand, then run: git aipass hooks install",
    )


def uninstall(repo: Repo) -> list[str]:
    folder = hooks_dir(repo)
    done = []
    for hook in HOOKS:
        path = folder / hook
        chained = folder / f"{hook}{CHAINED}"
        if is_ours(path):
            path.unlink()
            done.append(hook)
            if chained.exists():
                os.replace(chained, path)
    return done


def installed(repo: Repo) -> list[str]:
    folder = hooks_dir(repo)
    return [h for h in HOOKS if is_ours(folder / h)]
