"""What doctor says of sync, from what is on disk (no network): remotes whose fetches do
not carry the event refs, and event refs that differ from a remote's as last fetched."""

from __future__ import annotations

from dataclasses import dataclass

from aipass_git.core import git
from aipass_git.core.repo import Repo
from aipass_git.store import remote
from aipass_git.sync.cycle import KINDS


@dataclass(frozen=True)
class RemoteState:
    remote: str
    set_up: bool
    only_here: int = 0  # event refs the remote has not seen (as last fetched)
    only_there: int = 0  # fetched but not yet in this clone
    unpushed: int = 0  # both have them; ours holds the remote's and more (events written here)
    behind: int = 0  # both have them; the remote's holds ours and more (fetched, not taken in)
    diverged: int = 0  # both wrote since they last agreed: sync merges them
    differ: int = 0  # at different commits, but git could not say how


def remote_states(repo: Repo) -> list[RemoteState]:
    states = []
    names = remote.remotes(repo.root)
    ours = {ref: oid for ref, oid in git.list_refs(repo.root, remote.LOCAL) if _known(ref)} if names else {}
    for name in names:
        if not remote.is_set_up(repo.root, name):
            states.append(RemoteState(name, False))
            continue
        prefix = remote.tracking_prefix(name)
        theirs = {remote.LOCAL + ref[len(prefix):]: oid for ref, oid in git.list_refs(repo.root, prefix)}
        theirs = {ref: oid for ref, oid in theirs.items() if _known(ref)}
        differ = {ref for ref in ours.keys() & theirs.keys() if ours[ref] != theirs[ref]}
        states.append(RemoteState(name, True, only_here=len(ours.keys() - theirs.keys()),
                                  only_there=len(theirs.keys() - ours.keys()), **_apart(repo, prefix, differ)))
    return states


def _apart(repo: Repo, prefix: str, differ: set[str]) -> dict[str, int]:
    """DIFFER (local refs at another commit than the remote's) told apart: unpushed, behind,
    diverged; two dry runs decide every ref at once, so doctor reads no history itself."""
    if not differ:
        return {}
    pushable = remote.fast_forwards(repo.root, remote.LOCAL, prefix)  # tracking refs ours would move
    takeable = remote.fast_forwards(repo.root, prefix, remote.LOCAL)  # local refs theirs would move
    if pushable is None or takeable is None:
        return {"differ": len(differ)}
    unpushed = {ref for ref in differ if prefix + ref[len(remote.LOCAL):] in pushable}
    behind = differ & takeable
    return {"unpushed": len(unpushed), "behind": len(behind), "diverged": len(differ - unpushed - behind)}


def _known(ref: str) -> bool:
    return any(kind.id_of(ref) is not None for kind in KINDS)
