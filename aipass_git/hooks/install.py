"""Installing the shims into the hooks folder git actually uses (core.hooksPath included).

A hook that is already there is kept, renamed `<hook>.aipass-chained`, and run first by
the shim; `uninstall` puts it back.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from aipass_git.core import git, program, resources, secrets
from aipass_git.core.errors import RefusedError
from aipass_git.core.repo import Repo

MARKER = "aipass-git hook shim"
HOOKS = {  # hook -> reads standard input
    "pre-commit": False,
    "commit-msg": False,
    "pre-push": True,
    "post-merge": False,
    "post-commit": False,
    "post-checkout": False,
    "reference-transaction": True,
}
CHAINED = ".aipass-chained"


def hooks_dir(repo: Repo) -> Path:
    return git.git_paths(repo.root, "hooks")[0]


def shared_hooks_path(repo: Repo) -> str | None:
    """Why the hooks folder git uses here is not this repository's own, or None when it is.

    A core.hooksPath from the user's global or the system config points every repository
    at one folder: shims installed there would run, and fail, in all of them."""
    found = git.config_origin(repo.root, "core.hooksPath")
    if found is None or found[0] in ("local", "worktree"):
        return None
    scope, origin, value = found
    where = origin.removeprefix("file:") if origin.startswith("file:") else origin
    return f"core.hooksPath is set to {value!r} in the {scope} git config ({where}), which every repository shares"


def require_own_hooks_dir(repo: Repo) -> None:
    reason = shared_hooks_path(repo)
    if reason is not None:
        raise RefusedError(f"hooks not installed: {reason}", OWN_DIR_HINT)


OWN_DIR_HINT = ("give this repository its own hooks folder, then install: "
                "git config --local core.hooksPath .git/hooks && git aipass hooks install")


# The shims' way to aipass-git: the installation that installed them, else a git-aipass
# on PATH; when both are gone (a deleted venv) the guard hooks say in one line that they
# were skipped and the commit or push goes on, instead of every commit failing.
FIND = """\
aipass_exe=@EXE@
aipass() { @ARGV@ "$@"; }
if [ ! -x "$aipass_exe" ]; then
    if command -v git-aipass >/dev/null 2>&1; then
        aipass() { git-aipass "$@"; }
    else
        aipass() {
            case "@HOOK@" in pre-commit|pre-push)
                echo "aipass-git: @HOOK@ checks skipped: $aipass_exe is gone and git-aipass is not on PATH" \\
                     "(reinstall aipass-git, or remove its hooks: git aipass hooks uninstall)" >&2 ;;
            esac
        }
    fi
fi"""


def _render(hook: str) -> str:
    shims = resources.hook_shims_dir()
    template = (shims / f"{hook}.sh") if (shims / f"{hook}.sh").is_file() else shims / "shim.sh"
    words = program.argv()
    find = FIND.replace("@EXE@", shlex.quote(words[0])).replace("@ARGV@", " ".join(shlex.quote(w) for w in words))
    text = template.read_text(encoding="utf-8").replace("@FIND_AIPASS@", find)
    return (text.replace("@HOOK@", hook).replace("@STDIN@", "yes" if HOOKS[hook] else "no")
            .replace("@SECRET_WORDS@", secrets.ANCHORS))


def is_ours(path: Path) -> bool:
    try:
        return MARKER in path.read_text(encoding="utf-8", errors="replace")
    except (FileNotFoundError, IsADirectoryError):
        return False


def install(repo: Repo) -> list[str]:
    require_own_hooks_dir(repo)
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


def installed(repo: Repo, folder: Path | None = None) -> list[str]:
    """Our hooks in FOLDER (default: the hooks folder git uses here)."""
    folder = folder or hooks_dir(repo)
    return [h for h in HOOKS if is_ours(folder / h)]
