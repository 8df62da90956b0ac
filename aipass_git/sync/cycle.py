"""`git aipass sync`: one exchange of every event ref with a remote, then wake the agents
whose mailboxes brought dispatches to run here.

Syncs of one clone take turns (a lock in the runtime folder): two at once would only
fetch and merge the same refs twice. Agents keep sending meanwhile; what they write
after the fetch goes out with the next round or the next sync.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aipass_git.agents import identity
from aipass_git.claims import claim
from aipass_git.core import git
from aipass_git.core.errors import AipassError, RefusedError
from aipass_git.core.repo import Repo
from aipass_git.dispatch import recovery
from aipass_git.mail import mailbox
from aipass_git.plans import plan
from aipass_git.prs import record
from aipass_git.store import entity, exchange, remote
from aipass_git.store.events import EventStore
from aipass_git.store.refs import RefUpdate

KINDS = [mailbox.KIND, record.KIND, plan.KIND, claim.KIND]
LOCK_SECONDS = 600.0  # another sync of this clone on a slow link


@dataclass
class Synced:
    report: exchange.Report
    set_up: bool  # this sync configured the remote's refspec
    woken: list[str] = field(default_factory=list)

    def as_json(self) -> dict:
        return {**self.report.as_json(), "set_up": self.set_up, "woken": self.woken}


def choose_remote(repo: Repo, name: str | None) -> str:
    if name is not None:
        if name not in remote.remotes(repo.root):
            raise RefusedError(f"no remote {name!r} in this repository", "see: git remote -v")
        return name
    found = remote.default_remote(repo.root)
    if found is None:
        names = remote.remotes(repo.root)
        if names:
            raise RefusedError(f"which remote? this branch has none and there is no 'origin' ({', '.join(names)})",
                               "name one: git aipass sync REMOTE")
        raise RefusedError("this repository has no remote to sync with", "add one: git remote add origin URL")
    return found


def sync(repo: Repo, name: str | None = None) -> Synced:
    from filelock import FileLock  # deferred: ~40 ms cold

    name = choose_remote(repo, name)
    changed = remote.set_up(repo.root, name)
    lock_path = repo.runtime_dir / "locks" / "sync.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(lock_path), timeout=LOCK_SECONDS):
        with EventStore(repo) as store:
            report = exchange.exchange(store, name, KINDS, lambda: identity.human(repo).author)
    # what came in may hold new dispatches; what went out may hold ones that waited for
    # the remote (a claim needs it): either way the owner's queue is looked at
    moved = [*report.came_in, *report.merged, *report.went_out]
    owners = [mailbox.KIND.id_of(ref) for ref in moved]
    woken = recovery.wake_owners(repo, [o for o in owners if o], "synced-dispatch")
    return Synced(report, changed, woken)


def take_in(repo: Repo) -> list[str]:
    """Bring fetched mailboxes (refs/aipass-sync/<remote>/mail/*) into the local refs without
    the network: fast-forward, or merge when both sides wrote. What a plain `git fetch`
    brought then reaches the agents; the next sync pushes the merges. Returns the local
    refs that moved."""
    root = repo.root
    before = dict(git.list_refs(root, mailbox.NAMESPACE))
    pairs: dict[str, str] = {}  # local ref -> the tracking ref to take in
    for name in remote.remotes(root):
        prefix = remote.tracking_prefix(name) + "mail/"
        fetched = dict(git.list_refs(root, prefix))
        ours = {ref: remote.LOCAL + "mail/" + ref[len(prefix):] for ref in fetched}
        kept = {ref: dst for ref, dst in ours.items() if mailbox.KIND.id_of(dst) is not None}
        if any(before.get(dst) != fetched[ref] for ref, dst in kept.items()):
            remote.fast_forward(root, [(ref, dst) for ref, dst in kept.items()], (prefix, mailbox.NAMESPACE),
                                sorted(fetched.keys() - kept.keys()))
            pairs.update({dst: ref for ref, dst in kept.items()})
    if not pairs:
        return []
    with EventStore(repo) as store:
        author = None
        for dst, src in sorted(pairs.items()):
            ours, theirs = store.tip(dst), store.tip(src)
            if ours is None or theirs is None or ours == theirs or git.is_ancestor(root, theirs, ours):
                continue
            author = author or identity.human(repo).author
            try:
                merged, _ = entity.merge_tips(store, mailbox.KIND, dst, ours, theirs, author)
            except AipassError:
                continue  # left apart: the next sync says why
            store.refs.apply([RefUpdate(dst, merged, ours)])
    after = dict(git.list_refs(root, mailbox.NAMESPACE))
    return [dst for dst in pairs if after.get(dst) != before.get(dst)]
