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
    differ: int = 0  # both have them, at different commits: unpushed, behind or diverged


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
        states.append(RemoteState(
            name, True,
            only_here=len(ours.keys() - theirs.keys()),
            only_there=len(theirs.keys() - ours.keys()),
            differ=sum(1 for ref in ours.keys() & theirs.keys() if ours[ref] != theirs[ref]),
        ))
    return states


def _known(ref: str) -> bool:
    return any(kind.id_of(ref) is not None for kind in KINDS)
