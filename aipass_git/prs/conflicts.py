"""Early conflict warnings: which live desks will not merge cleanly, before anyone asks.

A desk is live when its branch (`aipass/<agent>`) has commits the base branch lacks.
For each pair of live desks that changed a file in common since they left the base
branch, and for each live desk against the base branch as it is now, `git merge-tree
--write-tree` says whether the merge conflicts and in which files; no worktree is
touched. Pairs that share no changed file are not merged at all (they cannot conflict).
`tell` mails both agents of a conflict once per pair and set of files (a marker in the
runtime dir), not on every look.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from itertools import combinations

from aipass_git.agents.desk import BRANCH_PREFIX, agent_of, branch_for
from aipass_git.agents.session import Session
from aipass_git.core import clock, git
from aipass_git.core.canonical import encode, write_derived
from aipass_git.core.errors import AipassError
from aipass_git.core.repo import Repo
from aipass_git.mail.postoffice import PostOffice
from aipass_git.store.events import EventStore


@dataclass(frozen=True)
class Conflict:
    ours: str  # an agent
    theirs: str  # another agent, or the base branch's name
    files: tuple[str, ...]
    tree: str = ""  # merge-tree's result, its conflicted files holding the markers

    def as_dict(self) -> dict:
        return {"agents": [self.ours, self.theirs], "files": list(self.files)}


def find(repo: Repo, base_branch: str) -> list[Conflict]:
    """The conflicts ahead, also saved for `status` and the monitor (`last`)."""
    base = git.resolve_commit(repo.root, f"refs/heads/{base_branch}")
    if base is None:
        return []
    # one walk over every desk's commits that the base lacks (never a git process per
    # desk): %S names the desk a commit was reached from, the paths are what it touched
    desks: dict[str, tuple[str, set[str]]] = {}
    tips = dict(git.list_refs(repo.root, f"refs/heads/{BRANCH_PREFIX}"))
    for (source,), paths in git.log_touched(repo.root, ["--source", f"--branches={branch_for('*')}", "--not", base], ["%S"]):
        branch = source.removeprefix("refs/heads/")  # %S is the short name when reached by --branches
        agent = agent_of(branch)
        if agent is not None and f"refs/heads/{branch}" in tips:
            desks.setdefault(agent, (tips[f"refs/heads/{branch}"], set()))[1].update(paths)
    found = []
    for (a, (tip_a, files_a)), (b, (tip_b, files_b)) in combinations(sorted(desks.items()), 2):
        if files_a & files_b:
            tree, clashing = git.merge_tree(repo.root, tip_a, tip_b)
            if clashing:
                found.append(Conflict(a, b, tuple(clashing), tree))
    for agent, (tip, _) in sorted(desks.items()):
        tree, clashing = git.merge_tree(repo.root, base, tip)
        if clashing:
            found.append(Conflict(agent, base_branch, tuple(clashing), tree))
    _save(repo, found)
    return found


def _save(repo: Repo, found: list[Conflict]) -> None:
    write_derived(repo.runtime_dir / "conflicts" / "last.json",
                  encode({"at": clock.utc_now(), "conflicts": [c.as_dict() for c in found]}))


def last(repo: Repo) -> dict:
    """What the latest look found ({"at", "conflicts"}; empty before the first): status and
    the monitor show it without running merge-tree themselves."""
    try:
        return json.loads((repo.runtime_dir / "conflicts" / "last.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


HUNK_LINES = 60  # of conflict markers and what they hold, per mail: enough to see the clash


def hunks(repo: Repo, c: Conflict) -> str:
    """The conflicting hunks, as merge-tree marked them in its result, for the mail."""
    if not c.tree:
        return ""
    out: list[str] = []
    with EventStore(repo) as store:
        blobs = store.reader.read_many([f"{c.tree}:{f}" for f in c.files], missing_ok=True)
    for path, read in zip(c.files, blobs):
        if read is None:
            continue  # a file deleted on one side: no lines to show
        inside = False
        for line in read[1].decode("utf-8", "replace").splitlines():
            if line.startswith("<<<<<<< "):
                inside = True
                out.append(f"--- {path}")
            if inside:
                out.append(line)
            if line.startswith(">>>>>>> "):
                inside = False
    if not out:
        return ""
    shown = out[:HUNK_LINES] + ([f"... ({len(out) - HUNK_LINES} more lines)"] if len(out) > HUNK_LINES else [])
    return "\nThe hunks, as a merge would mark them:\n" + "".join(f"  {l}\n" for l in shown)


def tell(session: Session, conflicts: list[Conflict]) -> list[Conflict]:
    """Mail the agents of each conflict not told before; returns those told now."""
    marks = session.repo.runtime_dir / "conflicts"
    marks.mkdir(parents=True, exist_ok=True)
    told = []
    for c in conflicts:
        key = hashlib.sha256("\0".join([c.ours, c.theirs, *c.files]).encode()).hexdigest()[:24]
        try:
            os.close(os.open(marks / key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        except FileExistsError:
            continue
        other = f"@{c.theirs}'s desk" if c.theirs != session.config.base_branch else f"the base branch {c.theirs}"
        to = [f"@{c.ours}"] + ([f"@{c.theirs}"] if c.theirs != session.config.base_branch else [])
        try:
            with PostOffice(session) as po:
                po.send(to, f"conflict ahead: {', '.join(c.files)}"[:200],
                        f"The desk of @{c.ours} and {other} change the same lines of:\n"
                        + "".join(f"  {f}\n" for f in c.files)
                        + hunks(session.repo, c)
                        + "\nSettle it before the merge queue bounces one of you: talk it over (git aipass send), "
                          "or bring your desk up to date and resolve it there.\nSee: git aipass conflicts\n")
            told.append(c)
        except AipassError:
            (marks / key).unlink(missing_ok=True)  # not told: the next look tries again
    return told
