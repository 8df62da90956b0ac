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
PASSES = 3  # repacks in one run at most, while writes keep adding packs


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


def kick(repo: Repo) -> None:
    """Start housekeeping in the background when it is due and none runs."""
    if overdue(repo) is None:
        return
    holder = lock_of(repo).holder()
    if isinstance(holder.get("pid"), int):
        try:
            os.kill(holder["pid"], 0)
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
    with lock_of(repo).acquired(0, "another housekeeping runs; it does this one's work"):
        # writes during a repack find this one running and start none: their packs are
        # rolled up by another pass here, or they would wait for the next write
        for _ in range(PASSES):
            git.run(["repack", "-d", "-q", "--geometric=2"], repo.root, timeout=REPACK_SECONDS,
                    hint="run it by hand to see why: git repack -d --geometric=2")
            if overdue(repo) is None:
                break
        git.run(["pack-refs", "--all"], repo.root, timeout=REPACK_SECONDS)
    after = counts(repo)
    return {"done": True, "reason": reason or "asked", "packs": after[0], "loose": after[1],
            "packs_before": before[0], "loose_before": before[1]}

