"""Moving event refs between a clone and a remote: git's own fetch and push, used so that
git decides every ancestry question and nothing is ever forced.

- `fetch_tracking` mirrors the remote's `refs/aipass/*` into `refs/aipass-sync/<remote>/*`
  in one atomic transaction: a remote-tracking copy, like `refs/remotes/`, that may be
  overwritten because the remote's history is the remote's.
- `fast_forward` brings local refs up to their tracking copies with `git fetch .`, without
  force: git moves only the refs whose local value the remote's contains.
- `push` sends local refs without force: the remote takes only fast-forwards, and checks
  the old value it advertised (a compare-and-swap); the rest come back as rejected.

aipass's own hooks do not run for these updates (TOOL_WRITE, NO_HOOKS): the caller knows
what moved and acts on it once.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from aipass_git.core import git
from aipass_git.core.errors import AipassError, RefusedError
from aipass_git.store.refs import NO_HOOKS, TOOL_WRITE

LOCAL = "refs/aipass/"
TRACKING = "refs/aipass-sync/"
# a fetch or push of a thousand refs over a slow link: minutes, not the default minute
NETWORK_SECONDS = 600.0


CLONE_KEY = "aipass.clone"
CLONE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


def tracking_prefix(remote: str) -> str:
    return f"{TRACKING}{remote}/"


def tracking_refspec(remote: str, under: str = "") -> str:
    return f"+{LOCAL}{under}*:{tracking_prefix(remote)}{under}*"


def remotes(root: Path) -> list[str]:
    return git.output(["remote"], root).split()


def default_remote(root: Path) -> str | None:
    """The current branch's remote, else `origin`, else the only remote; None without one."""
    names = remotes(root)
    branch = git.current_branch(root)
    upstream = git.config_get(root, f"branch.{branch}.remote") if branch else None
    if upstream in names:
        return upstream
    if "origin" in names:
        return "origin"
    return names[0] if len(names) == 1 else None


def is_set_up(root: Path, remote: str) -> bool:
    """Whether REMOTE's fetch refspecs carry the event refs (see `set_up`)."""
    proc = git.run(["config", "--get-all", f"remote.{remote}.fetch"], root, check=False)
    return tracking_refspec(remote) in proc.stdout.decode("utf-8", "replace").split()


def set_up(root: Path, remote: str) -> bool:
    """Make every `git fetch REMOTE` bring its event refs into the tracking namespace, and
    keep a reflog for every aipass ref so that no update is ever lost without a trace.
    No push refspec: that would replace what a plain `git push` pushes (the branch);
    `git aipass sync` pushes the event refs. Returns whether anything changed."""
    if remote not in remotes(root):
        raise RefusedError(f"no remote {remote!r} in this repository", "see: git remote -v")
    changed = False
    if not is_set_up(root, remote):
        git.run(["config", "--add", f"remote.{remote}.fetch", tracking_refspec(remote)], root)
        changed = True
    if git.config_get(root, "core.logAllRefUpdates") != "always":
        git.config_set(root, "core.logAllRefUpdates", "always")
        changed = True
    return changed


def sync_remote(root: Path) -> str | None:
    """The remote event refs travel through: the default remote, once it is set up."""
    name = default_remote(root)
    return name if name is not None and is_set_up(root, name) else None


def clone_name(root: Path, *, create: bool = True) -> str | None:
    """This clone's name among the clones of the repository (`git config aipass.clone`),
    made on first use: the host name and a random suffix, so two clones on one machine
    differ too. Dispatch claims and passports' `home` name clones by it."""
    name = git.config_get(root, CLONE_KEY)
    if name:
        if not CLONE_NAME.fullmatch(name):
            raise RefusedError(f"git config {CLONE_KEY} is {name!r}, not a clone name",
                               "letters, digits, '.', '_' and '-', at most 63: git config aipass.clone NAME")
        return name
    if not create:
        return None
    host = re.sub(r"[^A-Za-z0-9._-]", "-", os.uname().nodename.split(".")[0])[:40].strip("-._") or "clone"
    name = f"{host}-{os.urandom(3).hex()}"
    git.config_set(root, CLONE_KEY, name)
    return name


def fetch_tracking(root: Path, remote: str, under: str = "") -> None:
    """Mirror the remote's refs/aipass/<UNDER>* into the tracking namespace (one
    transaction; with no UNDER, refs the remote deleted go too). A pattern, not a name, so
    that a ref the remote does not have yet is no error."""
    prune = [] if under else ["--prune"]
    proc = git.run([*NO_HOOKS, "fetch", "--quiet", "--atomic", *prune, "--no-write-fetch-head", "--no-tags",
                    remote, tracking_refspec(remote, under)], root, env=TOOL_WRITE, check=False,
                   timeout=NETWORK_SECONDS)
    if proc.returncode != 0:
        raise _network_error("fetch from", remote, proc.stderr)


def fast_forward(root: Path, pairs: list[tuple[str, str]], glob: tuple[str, str] | None = None,
                 skip: list[str] | tuple[str, ...] = ()) -> None:
    """Move each local ref DST to SRC where DST's value is in SRC's history (or DST does
    not exist yet); git refuses the others, which the caller sees by reading the refs.
    With GLOB (source and destination prefixes) one pattern moves every ref under them
    but the SKIP sources: git matches each explicit refspec against every ref, so a
    thousand explicit pairs cost a million comparisons."""
    if not pairs:
        return
    specs = [f"{glob[0]}*:{glob[1]}*", *[f"^{s}" for s in skip]] if glob else [f"{src}:{dst}" for src, dst in pairs]
    git.run([*NO_HOOKS, "fetch", "--quiet", "--no-write-fetch-head", "--no-tags", ".", *specs],
            root, env=TOOL_WRITE, check=False, timeout=NETWORK_SECONDS)


def fast_forwards(root: Path, src: str, dst: str) -> set[str] | None:
    """The refs under prefix DST that would move forward to the ref of the same name under
    SRC (DST's value is in SRC's history), decided by git for every ref in one dry-run push
    into this repository (nothing moves); None when git could not tell."""
    proc = git.run([*NO_HOOKS, "push", "--dry-run", "--porcelain", "--no-verify", ".", f"{src}*:{dst}*"],
                   root, env=TOOL_WRITE, check=False)
    moves, told = set(), False
    for line in proc.stdout.decode("utf-8", "replace").splitlines():
        flag, _, rest = line.partition("\t")
        spec = rest.partition("\t")[0]
        if len(flag) == 1 and ":" in spec:
            told = True
            if flag == " ":
                moves.add(spec.split(":", 1)[1])
    return moves if told or proc.returncode == 0 else None


@dataclass(frozen=True)
class Pushed:
    ref: str
    ok: bool
    reason: str  # git's summary: "[new reference]", "[rejected] (non-fast-forward)", ...


def push(root: Path, remote: str, refs: list[str], sources: dict[str, str] | None = None,
         glob: str | None = None, skip: list[str] | tuple[str, ...] = ()) -> list[Pushed]:
    """Push each local REF to the same name on REMOTE, never forced; one result per ref.
    SOURCES may give a commit to push instead of a ref's local value (a drafted claim).
    With GLOB (a prefix), one pattern pushes every local ref under it but SKIP (see
    `fast_forward`); refs the remote already holds come back as up to date."""
    if not refs:
        return []
    sources = sources or {}
    specs = ([f"{glob}*:{glob}*", *[f"^{s}" for s in skip]] if glob and not sources
             else [f"{sources.get(r, r)}:{r}" for r in refs])
    proc = git.run([*NO_HOOKS, "push", "--porcelain", "--no-verify", remote, *specs],
                   root, env=TOOL_WRITE, check=False, timeout=NETWORK_SECONDS)
    results = {}
    for line in proc.stdout.decode("utf-8", "replace").splitlines():
        flag, _, rest = line.partition("\t")
        spec, _, summary = rest.partition("\t")
        if len(flag) == 1 and ":" in spec:
            results[spec.split(":", 1)[1]] = Pushed(spec.split(":", 1)[1], flag in " *=+-", summary)
    if not results and proc.returncode != 0:
        raise _network_error("push to", remote, proc.stderr)
    return [results.get(r, Pushed(r, False, "not reported by git push")) for r in refs]


def _network_error(what: str, remote: str, stderr: bytes) -> AipassError:
    lines = stderr.decode("utf-8", "replace").strip().splitlines()
    return AipassError(f"could not {what} {remote!r}: {lines[-1] if lines else 'git gave no reason'}",
                       f"check the remote (git remote -v) and that you can reach it (git fetch {remote})")
