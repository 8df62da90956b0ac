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

from dataclasses import dataclass
from pathlib import Path

from aipass_git.core import git
from aipass_git.core.errors import AipassError
from aipass_git.store.refs import NO_HOOKS, TOOL_WRITE

LOCAL = "refs/aipass/"
TRACKING = "refs/aipass-sync/"
# a fetch or push of a thousand refs over a slow link: minutes, not the default minute
NETWORK_SECONDS = 600.0


def tracking_prefix(remote: str) -> str:
    return f"{TRACKING}{remote}/"


def tracking_refspec(remote: str) -> str:
    return f"+{LOCAL}*:{tracking_prefix(remote)}*"


def fetch_tracking(root: Path, remote: str) -> None:
    """Mirror the remote's refs/aipass/* into the tracking namespace (one transaction;
    refs the remote deleted go too)."""
    proc = git.run([*NO_HOOKS, "fetch", "--quiet", "--atomic", "--prune", "--no-write-fetch-head", "--no-tags",
                    remote, tracking_refspec(remote)], root, env=TOOL_WRITE, check=False, timeout=NETWORK_SECONDS)
    if proc.returncode != 0:
        raise _network_error("fetch from", remote, proc.stderr)


def fast_forward(root: Path, pairs: list[tuple[str, str]]) -> None:
    """Move each local ref DST to SRC where DST's value is in SRC's history (or DST does
    not exist yet); git refuses the others, which the caller sees by reading the refs."""
    if pairs:
        git.run([*NO_HOOKS, "fetch", "--quiet", "--no-write-fetch-head", "--no-tags", ".",
                 *[f"{src}:{dst}" for src, dst in pairs]], root, env=TOOL_WRITE, check=False, timeout=NETWORK_SECONDS)


@dataclass(frozen=True)
class Pushed:
    ref: str
    ok: bool
    reason: str  # git's summary: "[new reference]", "[rejected] (non-fast-forward)", ...


def push(root: Path, remote: str, refs: list[str]) -> list[Pushed]:
    """Push each local REF to the same name on REMOTE, never forced; one result per ref."""
    if not refs:
        return []
    proc = git.run([*NO_HOOKS, "push", "--porcelain", "--no-verify", remote, *[f"{r}:{r}" for r in refs]],
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
