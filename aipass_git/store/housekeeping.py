"""Keeping the object store healthy without a person running `git gc`.

Every bulk send writes one pack, and every single write a few loose objects; left alone,
a busy repository ends with hundreds of packs and tens of thousands of loose objects,
and every read pays for them. When the packs or loose objects pass a bound, the write
that noticed starts `git aipass housekeeping` in the background (never inside a user's
command): a geometric repack, which rolls the small packs and the loose objects into
bigger ones and leaves big packs alone, then `pack-refs`. One runs at a time; `doctor`
says when it is overdue.
"""

from __future__ import annotations

import os

from aipass_git.core import git
from aipass_git.core.program import run_detached
from aipass_git.core.repo import Repo
from aipass_git.store import locks

MAX_PACKS = 10
MAX_LOOSE = 6700  # git gc --auto's own bound
REPACK_SECONDS = 3600.0
ROUNDS = 10  # rounds in one run at most while writes keep coming; a later write starts another


def counts(repo: Repo) -> tuple[int, int]:
    """(packs, loose objects, estimated as git does: one fan-out folder times 256)."""
    objects = repo.objects_dir
    packs = len(list((objects / "pack").glob("*.pack")))
    try:
        loose = len(os.listdir(objects / "17")) * 256
    except OSError:
        loose = 0
    return packs, loose


def overdue(repo: Repo) -> str | None:
    """Why housekeeping is due, or None."""
    packs, loose = counts(repo)
    if packs > MAX_PACKS:
        return f"{packs} packs (more than {MAX_PACKS})"
    if loose > MAX_LOOSE:
        return f"about {loose} loose objects (more than {MAX_LOOSE})"
    return None


def lock_of(repo: Repo) -> locks.Held:
    return locks.Held(repo.runtime_dir / "locks" / "housekeeping.lock", "aipass housekeeping")


def again_marker(repo: Repo):
    """Left by a write that found housekeeping running: there is more to roll up."""
    return repo.runtime_dir / "housekeeping-again"


def kick(repo: Repo) -> None:
    """Start housekeeping in the background when it is due and none runs (when one runs,
    tell it to look again before it ends)."""
    if overdue(repo) is None:
        return
    holder = lock_of(repo).holder()
    if isinstance(holder.get("pid"), int):
        try:
            os.kill(holder["pid"], 0)
            again_marker(repo).touch()
            return
        except OSError:
            pass
    run_detached(repo.root, "housekeeping", "--quiet")


def run(repo: Repo, *, force: bool = False) -> dict:
    """Repack (geometric) and pack refs when due (or FORCE); returns what was done."""
    before = counts(repo)
    reason = overdue(repo)
    if reason is None and not force:
        return {"done": False, "packs": before[0], "loose": before[1], "reason": None}
    again = again_marker(repo)
    with lock_of(repo).acquired(0, "another housekeeping runs; it does this one's work"):
        for _ in range(ROUNDS):
            again.unlink(missing_ok=True)
            _repack(repo, "--geometric=2")
            if counts(repo)[0] > MAX_PACKS and not again.exists():
                # nothing was written meanwhile, and the packs left grow geometrically (a
                # geometric repack keeps such a row): one pack of everything, deltas reused
                _repack(repo, "-a")
            git.run(["pack-refs", "--all"], repo.root, timeout=REPACK_SECONDS)
            if not again.exists() or overdue(repo) is None:
                break  # else writes came while it ran, and their kicks started none: go again
    if again.exists() and overdue(repo) is not None:
        # a kick between the last look and the lock's release found it running and started
        # none: the marker it left is that request (the next run clears it as it starts)
        run_detached(repo.root, "housekeeping", "--quiet")
    after = counts(repo)
    return {"done": True, "reason": reason or "asked", "packs": after[0], "loose": after[1],
            "packs_before": before[0], "loose_before": before[1]}


def _repack(repo: Repo, how: str) -> None:
    git.run(["repack", "-d", "-q", how], repo.root, timeout=REPACK_SECONDS,
            hint=f"run it by hand to see why: git repack -d {how}")
