"""Single git calls, one question or action per function (the pre-commit style).

Callers never parse git output themselves and never build a shell string; paths come
NUL-separated (`-z`) and are split once, here. Loops over many items belong to the
batched readers and writers in `aipass_git.store`, not here.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
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
    return resolve_commit(root, "HEAD")


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


def delete_ref(root: Path, ref: str) -> bool:
    """Delete REF (whatever it holds); False when git would not."""
    return run(["update-ref", "-d", ref], root, check=False).returncode == 0


def ref_types(root: Path, prefix: str) -> list[tuple[str, str]]:
    """(refname, type of the object it points at) of every ref under PREFIX."""
    text = output(["for-each-ref", "--format=%(refname) %(objecttype)", prefix], root)
    return [tuple(line.rsplit(" ", 1)) for line in text.splitlines() if line]  # type: ignore[misc]


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


# -- commits and refs ---------------------------------------------------------------------


def resolve_commit(root: Path, rev: str) -> str | None:
    """The commit REV names (a branch, a ref, an id), or None when it names none."""
    proc = run(["rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], root, check=False)
    return proc.stdout.decode().strip() or None if proc.returncode == 0 else None


def resolve_object(root: Path, name: str) -> str | None:
    """The id of the object NAME names (`HEAD:path`, `:path` in the index), or None."""
    proc = run(["rev-parse", "--verify", "--quiet", name], root, check=False)
    return proc.stdout.decode().strip() or None if proc.returncode == 0 else None


def is_ancestor(root: Path, ancestor: str, descendant: str) -> bool:
    return run(["merge-base", "--is-ancestor", ancestor, descendant], root, check=False).returncode == 0


def merge_base(root: Path, a: str, b: str) -> str | None:
    proc = run(["merge-base", a, b], root, check=False)
    return proc.stdout.decode().strip() or None if proc.returncode == 0 else None


def commits(root: Path, span: str, fmt: str = "%h %s") -> list[str]:
    """One line per commit of SPAN (`a..b`, or a single rev), newest first, as FMT says."""
    return output(["log", f"--format={fmt}", span, "--"], root, check=False).splitlines()


def log(root: Path, revs: list[str], fields: list[str], *, limit: int | None = None) -> list[list[str]]:
    """One list of FIELDS (`git log --format` placeholders, e.g. "%H", "%ae") per commit of
    REVS (rev-list arguments), newest first; none when REVS name nothing."""
    fmt = "%x1f".join(fields) + "%x1e"
    out = output(["log", f"--format={fmt}", *([f"-n{limit}"] if limit else []), *revs, "--"], root, check=False)
    return [record.strip("\n").split("\x1f") for record in out.split("\x1e") if record.strip("\n")]


def commit_tree(root: Path, tree: str, parents: list[str], message: str, *, env: dict[str, str] | None = None) -> str:
    """A commit of TREE on PARENTS (signed when the user's config says so)."""
    args = ["commit-tree", tree, *[a for p in parents for a in ("-p", p)], "-F", "-"]
    return output(args, root, input=message.encode("utf-8"), env=env)


def init_repo(path: Path, branch: str) -> None:
    run(["init", "--quiet", f"--initial-branch={branch}", str(path)], path)


def commit_paths(root: Path, paths: list[str], message: str, *, add: bool = False) -> None:
    """`git commit` of PATHS with the user's identity and hooks (ADD: `git add` them first)."""
    if add:
        run(["add", "--all", "--", *paths], root)
    run(["commit", "--quiet", "-m", message, "--", *paths], root)


def merge_tree(root: Path, ours: str, theirs: str) -> tuple[str, list[str]]:
    """(the merged tree, the paths that conflict) of two commits, computed without a worktree."""
    proc = run(["merge-tree", "--write-tree", "--name-only", "--no-messages", "-z", ours, theirs], root, check=False)
    if proc.returncode not in (0, 1):
        raise GitError(["merge-tree", ours, theirs], proc.returncode, proc.stderr.decode("utf-8", "replace"),
                       "check the branches with git log")
    tree, _, rest = proc.stdout.partition(b"\0")
    return tree.decode().strip(), sorted(set(zsplit(rest))) if proc.returncode == 1 else []


# -- files ----------------------------------------------------------------------------------


def staged_files(root: Path) -> list[str]:
    """Paths added, copied, modified or renamed in the index (what a commit would change)."""
    return zsplit(run(["diff", "--cached", "--name-only", "-z", "--diff-filter=ACMR"], root).stdout)


def staged_touched(root: Path) -> list[str]:
    """Every path the index changes against HEAD, a rename's old name and new name both,
    deletions included (what a claim on a path must hear about)."""
    return _touched(zsplit(run(["diff", "--cached", "--name-status", "-M", "-z"], root).stdout))


def touched_in_commits(root: Path, span: list[str]) -> list[str]:
    """Every path the commits of SPAN (rev-list arguments) change, renames by both names."""
    return list(dict.fromkeys(path for _, paths in log_touched(root, span, []) for path in paths))


def log_touched(root: Path, revs: list[str], fields: list[str], *, limit: int | None = None) -> list[tuple[list[str], list[str]]]:
    """(FIELDS, paths touched, renames by both names) per non-merge commit of REVS, newest
    first, from one `git log`."""
    fmt = "%x1e" + "%x1f".join(fields)
    out = run(["log", f"--format={fmt}", "--name-status", "-M", "-z", "--no-merges",
               *([f"-n{limit}"] if limit else []), *revs, "--"], root, check=False).stdout
    found = []
    for record in out.split(b"\x1e")[1:]:
        head, _, rest = record.partition(b"\0")
        found.append((head.decode("utf-8", "replace").split("\x1f"), _touched(zsplit(rest.lstrip(b"\n")))))
    return found


def _touched(parts: list[str]) -> list[str]:
    """The paths of `--name-status -z` output: a status, then one path (two for a rename
    or copy); the empty fields between commits of a log are skipped."""
    out: list[str] = []
    seen: set[str] = set()
    i = 0
    while i < len(parts):
        status = parts[i]
        if not status:
            i += 1
            continue
        count = 2 if status[:1] in ("R", "C") else 1
        for path in parts[i + 1: i + 1 + count]:
            if path not in seen:
                seen.add(path)
                out.append(path)
        i += 1 + count
    return out


def changed_files(root: Path, old: str, new: str | None = None, *, paths: list[str] | None = None,
                  only: str | None = None) -> list[str]:
    """Paths that differ between OLD and NEW (the work tree when NEW is None), renames
    as a deletion and an addition; ONLY is a --diff-filter, e.g. "ACMR"."""
    args = ["diff", "--name-only", "-z", "--no-renames", *([f"--diff-filter={only}"] if only else []), old]
    return zsplit(run([*args, *([new] if new else []), "--", *(paths or [])], root, check=False).stdout)


def name_status(root: Path, spec: str) -> list[str]:
    """`<status>\t<path>` lines of what SPEC (e.g. `a...b`) changes, for people to read."""
    return output(["diff", "--name-status", spec], root, check=False).splitlines()


def tracked_files(root: Path, paths: list[str] | None = None, *, untracked: bool = False) -> list[str]:
    """Files git tracks under PATHS (all when None); with UNTRACKED, the unignored others too."""
    args = ["ls-files", "-z", *(["--cached", "--others", "--exclude-standard"] if untracked else [])]
    return zsplit(run([*args, "--", *(paths or [])], root).stdout)


def untracked_files(root: Path) -> list[str]:
    return zsplit(run(["ls-files", "--others", "--exclude-standard", "-z"], root).stdout)


def tree_files(root: Path, rev: str, under: str) -> list[str]:
    """Every file under the folder UNDER at REV."""
    return zsplit(run(["ls-tree", "-r", "-z", "--name-only", rev, "--", under], root, check=False).stdout)


def blob_at(root: Path, rev: str, path: str) -> bytes | None:
    """The content of PATH at REV, or None when it has no such file."""
    if not rev:
        return None
    proc = run(["cat-file", "blob", f"{rev}:{path}"], root, check=False)
    return proc.stdout if proc.returncode == 0 else None


def is_dirty(root: Path, *, untracked: bool = False) -> bool:
    """Whether the worktree at ROOT has changes to tracked files (or untracked files)."""
    args = ["status", "--porcelain", f"--untracked-files={'normal' if untracked else 'no'}"]
    return bool(run(args, root).stdout.strip())


# -- the repository --------------------------------------------------------------------------


@dataclass(frozen=True)
class Worktree:
    path: Path
    head: str | None
    branch: str | None  # the full ref name checked out there, None when detached


def worktrees(root: Path) -> list[Worktree]:
    out = run(["worktree", "list", "--porcelain", "-z"], root).stdout.decode("utf-8", "surrogateescape")
    found = []
    for block in out.split("\0\0"):
        fields = dict(line.split(" ", 1) if " " in line else (line, "") for line in block.split("\0") if line)
        if "worktree" in fields:
            found.append(Worktree(Path(fields["worktree"]), fields.get("HEAD") or None, fields.get("branch") or None))
    return found


def add_worktree(root: Path, path: Path, branch: str, *, start: str | None = None) -> None:
    """A worktree at PATH on BRANCH (created from START when given)."""
    run(["worktree", "add", "--quiet", str(path), *([branch] if start is None else ["-b", branch, start])], root)


def prune_worktrees(root: Path) -> None:
    """Forget worktrees whose folders are gone."""
    run(["worktree", "prune"], root, check=False)


def fast_forward(root: Path, rev: str) -> None:
    """Move the branch checked out at ROOT forward to REV (never a merge commit)."""
    run(["merge", "--ff-only", "--quiet", rev], root, hint="it could not fast-forward")


def read_tree(root: Path, tree: str, *, env: dict[str, str] | None = None) -> None:
    """Load TREE into the index (the one GIT_INDEX_FILE in ENV names, for a private one)."""
    run(["read-tree", tree], root, env=env)


def run_hook(root: Path, hook: str, *, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run the user's HOOK as git would (`git hook run`); the caller reads its exit code."""
    return run(["hook", "run", "--ignore-missing", hook], root, env=env, check=False)


def hooks_dir(root: Path) -> Path:
    """Where git runs this worktree's hooks from (core.hooksPath included, relative to the
    worktree's top as git reads it)."""
    return root / output(["rev-parse", "--git-path", "hooks"], root)


def git_paths(root: Path, *names: str) -> list[Path]:
    """Absolute paths of NAMES inside the git dir (`git rev-parse --git-path`)."""
    args = ["rev-parse", "--path-format=absolute", *[a for n in names for a in ("--git-path", n)]]
    return [Path(line) for line in output(args, root, check=False).splitlines() if line]


def config_origin(root: Path, key: str) -> tuple[str, str, str] | None:
    """(scope, origin, value) of the value of KEY that wins (scope: system, global, local,
    worktree or command), or None when it is not set."""
    proc = run(["config", "--show-scope", "--show-origin", "-z", "--get", key], root, check=False)
    parts = proc.stdout.decode("utf-8", "surrogateescape").split("\0")
    return (parts[0], parts[1], parts[2]) if proc.returncode == 0 and len(parts) >= 3 else None


def config_get(root: Path, key: str) -> str | None:
    proc = run(["config", "--get", key], root, check=False)
    return proc.stdout.decode().strip() if proc.returncode == 0 else None


def ignorecase(root: Path) -> bool:
    """core.ignorecase: the file system folds case, so paths that differ only in case are one."""
    return (config_get(root, "core.ignorecase") or "").lower() in ("true", "yes", "on", "1")


def config_set(root: Path, key: str, value: str, *, local: bool = True) -> None:
    run(["config", *(["--local"] if local else []), key, value], root)
