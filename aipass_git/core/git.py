"""Single git calls, one question per function (the pre-commit style).

Callers never parse git output themselves and never build a shell string. Loops over
many items belong to the batched readers and writers in `aipass_git.store`, not here.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from aipass_git.core.errors import AipassError, GitError

# Every git call can hang (a lock held by a dead process, a credential prompt); none may
# hang the tool forever.
DEFAULT_TIMEOUT = 60.0


def run(
    args: list[str],
    cwd: Path | str,
    *,
    input: bytes | None = None,
    env: dict[str, str] | None = None,
    check: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
    hint: str | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run `git ARGS` in CWD and return the completed process (bytes out, bytes err)."""
    full_env = None
    if env:
        full_env = {**os.environ, **env}
    try:
        proc = subprocess.run(
            ["git", *args],
            cwd=cwd,
            input=input,
            env=full_env,
            capture_output=True,
            timeout=timeout,
            # A prompt for credentials or an editor would block a tool nobody watches.
            stdin=None if input is not None else subprocess.DEVNULL,
        )
    except FileNotFoundError:
        raise AipassError("git is not installed or not on PATH", "install git 2.38 or newer") from None
    except subprocess.TimeoutExpired:
        raise AipassError(
            f"git {' '.join(args[:2])} did not finish within {timeout:g} s",
            "another git process may hold a lock in this repository; retry when it is done",
        ) from None
    if check and proc.returncode != 0:
        raise GitError(args, proc.returncode, proc.stderr.decode("utf-8", "replace"), hint)
    return proc


def finish(proc: subprocess.Popen | None) -> None:
    """End a long-lived git process by closing its input, and reap it."""
    if proc is None:
        return
    try:
        proc.stdin.close()
    except OSError:
        pass
    proc.wait()


def output(args: list[str], cwd: Path | str, **kwargs) -> str:
    """stdout of `git ARGS` as text without the final newline."""
    return run(args, cwd, **kwargs).stdout.decode("utf-8", "surrogateescape").rstrip("\n")


def zsplit(data: bytes) -> list[str]:
    """Split NUL-separated git output (`-z`) into paths."""
    return [p.decode("utf-8", "surrogateescape") for p in data.split(b"\0") if p]


def version(cwd: Path | str = ".") -> tuple[int, ...]:
    """git's version as numbers, e.g. (2, 39, 5)."""
    text = output(["version"], cwd)  # "git version 2.39.5" or "git version 2.39.5.windows.1"
    numbers = []
    for part in text.split()[-1].split("."):
        if not part.isdigit():
            break
        numbers.append(int(part))
    return tuple(numbers)


def head_commit(root: Path) -> str | None:
    """The commit HEAD points at, or None on a branch with no commits yet."""
    proc = run(["rev-parse", "--verify", "--quiet", "HEAD^{commit}"], root, check=False)
    return proc.stdout.decode().strip() or None if proc.returncode == 0 else None


def current_branch(root: Path) -> str | None:
    """The short name of the checked-out branch (also when it has no commits), else None."""
    proc = run(["symbolic-ref", "--quiet", "--short", "HEAD"], root, check=False)
    return proc.stdout.decode().strip() or None if proc.returncode == 0 else None


def ident(root: Path, role: str = "AUTHOR", env: dict[str, str] | None = None) -> tuple[str, str] | None:
    """(name, email) git would record as a commit's ROLE (AUTHOR or COMMITTER), or None
    when git does not know who that is."""
    proc = run(["var", f"GIT_{role}_IDENT"], root, env=env, check=False)
    if proc.returncode != 0:
        return None
    text = proc.stdout.decode("utf-8", "replace").strip()  # "Name <email> 1700000000 +0000"
    name, _, rest = text.partition(" <")
    return name, rest.split(">", 1)[0]


def user_ident(root: Path) -> tuple[str, str]:
    """git's user (name, email) as a commit would record it."""
    found = ident(root)
    if found is None:
        raise AipassError(
            "git does not know who you are (user.name / user.email are not set)",
            'run: git config --global user.name "Your Name" && git config --global user.email you@example.com',
        )
    return found


def list_refs(root: Path, prefix: str) -> list[tuple[str, str]]:
    """(refname, object id) of every ref under PREFIX."""
    text = output(["for-each-ref", "--format=%(refname) %(objectname)", prefix], root)
    return [tuple(line.split(" ", 1)) for line in text.splitlines() if line]  # type: ignore[misc]


def status_paths(root: Path, paths: list[str]) -> list[str]:
    """Paths among PATHS that differ from HEAD in the index or working tree (or are untracked)."""
    proc = run(["status", "--porcelain=v1", "-z", "--untracked-files=all", "--", *paths], root)
    entries = zsplit(proc.stdout)
    changed, i = [], 0
    while i < len(entries):
        code, path = entries[i][:2], entries[i][3:]
        changed.append(path)
        # A rename or copy is followed by its source path, which has no status code.
        i += 2 if code[0] in "RC" or code[1] in "RC" else 1
    return changed
