"""One exchange of event refs with a remote: everything both sides wrote ends on both sides,
and nothing is forced (ARCHITECTURE.md, "Sync across clones").

A round:

1. fetch the remote's refs into the tracking namespace (one atomic transaction);
2. fast-forward every local ref the remote is ahead on (git decides, so a ref we moved
   meanwhile is left alone);
3. push every local ref that still differs, without force: the remote takes the ones it
   holds an ancestor of (compare-and-swap against what it advertised) and rejects the rest;
4. each rejected ref whose remote tip we hold is diverged: its kind merges the two tips
   into a commit with both as parents, the local ref moves to it by compare-and-swap, and
   the next round pushes it.

A push can still lose a race to another clone's push; the next round fetches that and
merges again. After `MAX_ROUNDS` the refs still apart are reported, never forced.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

from aipass_git.core import git
from aipass_git.core.errors import AipassError
from aipass_git.store import entity, remote
from aipass_git.store.events import EventStore
from aipass_git.store.objects import Ident
from aipass_git.store.refs import RefUpdate

MAX_ROUNDS = 5


@dataclass
class Report:
    remote: str
    came_in: list[str] = field(default_factory=list)  # local refs moved to the remote's tip
    went_out: list[str] = field(default_factory=list)  # refs the remote took from us
    merged: dict[str, str] = field(default_factory=dict)  # ref -> what the merge brought
    apart: dict[str, str] = field(default_factory=dict)  # ref -> why it is still not in sync
    rounds: int = 0

    def as_json(self) -> dict:
        return {"remote": self.remote, "came_in": sorted(set(self.came_in)), "went_out": sorted(set(self.went_out)),
                "merged": dict(sorted(self.merged.items())), "apart": dict(sorted(self.apart.items())),
                "rounds": self.rounds}


def kind_of(kinds: Iterable[entity.Kind], ref: str) -> entity.Kind | None:
    return next((k for k in kinds if k.id_of(ref) is not None), None)


def exchange(store: EventStore, name: str, kinds: list[entity.Kind], author: Ident | Callable[[], Ident],
             under: str = "") -> Report:
    """Bring the event refs of KINDS in line with remote NAME: all of them, or those under
    refs/aipass/UNDER when UNDER ends with '/', or the one ref refs/aipass/UNDER. AUTHOR
    signs merges; a function is asked only when there is one to make (a fresh clone
    whose user git does not know yet can still take everything in)."""
    root = store.repo.root
    report = Report(name)
    prefix = remote.tracking_prefix(name)
    only = Scope(kinds, under)
    for report.rounds in range(1, MAX_ROUNDS + 1):
        remote.fetch_tracking(root, name, under)
        fetched = {remote.LOCAL + r[len(prefix):]: oid for r, oid in git.list_refs(root, prefix + under)}
        theirs = only(fetched)
        ours = only(dict(git.list_refs(root, remote.LOCAL + under)))
        # a whole namespace moves by one pattern, with the refs of no kind left out
        whole = not under or under.endswith("/")
        behind = [(prefix + ref[len(remote.LOCAL):], ref) for ref, oid in theirs.items() if ours.get(ref) != oid]
        if behind:
            stray = [prefix + ref[len(remote.LOCAL):] for ref in fetched.keys() - theirs.keys()]
            remote.fast_forward(root, behind, (prefix + under, remote.LOCAL + under) if whole else None, stray)
            moved = only(dict(git.list_refs(root, remote.LOCAL + under)))
            report.came_in += [ref for ref, oid in moved.items() if oid != ours.get(ref)]
            ours = moved
        differ = sorted(ref for ref, oid in ours.items() if theirs.get(ref) != oid)
        if not differ:
            report.apart.clear()
            return report
        report.apart = {}
        stray = sorted(dict(git.list_refs(root, remote.LOCAL + under)).keys() - ours.keys())
        for pushed in remote.push(root, name, differ, glob=remote.LOCAL + under if whole else None, skip=stray):
            if pushed.ok:
                report.went_out.append(pushed.ref)
            else:
                report.apart[pushed.ref] = pushed.reason
        if not report.apart:
            return report
        # "fetch first": the remote moved past what we fetched; the next round fetches it.
        # "non-fast-forward": git checked that the remote's tip is not in ours: diverged.
        diverged = [ref for ref, why in report.apart.items() if "non-fast-forward" in why]
        _merge_diverged(store, kinds, author, report, diverged, ours, theirs)
    return report


@dataclass(frozen=True)
class Scope:
    kinds: list[entity.Kind]
    under: str

    def __call__(self, refs: dict[str, str]) -> dict[str, str]:
        """The refs of REFS in scope that belong to a kind (stray names are left to doctor)."""
        whole = remote.LOCAL + self.under
        return {ref: oid for ref, oid in refs.items()
                if (ref == whole or self.under.endswith("/") or not self.under) and kind_of(self.kinds, ref) is not None}


def _merge_diverged(store: EventStore, kinds: list[entity.Kind], author: Ident | Callable[[], Ident], report: Report,
                    diverged: list[str], ours: dict[str, str], theirs: dict[str, str]) -> None:
    updates, summaries = [], {}
    if diverged and not isinstance(author, Ident):
        author = author()
    for ref in diverged:
        if ref not in theirs:
            # refused though the remote had no such ref: a hook or permission on the remote
            report.apart[ref] = "the remote refused a new ref (its hooks or permissions)"
            continue
        kind = kind_of(kinds, ref)
        assert kind is not None
        try:
            merged, summaries[ref] = entity.merge_tips(store, kind, ref, ours[ref], theirs[ref], author)
        except AipassError as exc:
            report.apart[ref] = f"could not merge: {exc.message}"
            continue
        updates.append(RefUpdate(ref, merged, ours[ref]))
    if not updates:
        return
    # one transaction for all of them; if a local writer raced one ref, try each alone so
    # the others still go (the raced one merges again next round)
    if not store.refs.apply(updates):
        updates = [u for u in updates if store.refs.apply([u])]
    for update in updates:
        report.merged[update.ref] = summaries[update.ref]
        report.apart.pop(update.ref, None)
