"""Exactly-once dispatch across clones: a dispatch runs in the clone that claims it first.

Every clone that fetches a dispatch sees it pending. Before running one, a supervisor
claims it: a `claim` event on the agent's mailbox naming this clone (`aipass.clone`).
Without a sync remote the claim is a local compare-and-swap. With one, the claim commit
is drafted on top of the remote's tip and pushed without force *before* it is made
local: the remote takes exactly one claim commit on top of any tip, so of two clones
claiming at once one push lands and the other is refused, fetches, and finds the dispatch
claimed elsewhere. A clone that cannot reach the remote does not run the dispatch (it
stays queued, and the next sync or wake tries again): running it unclaimed could run it
twice.
"""

from __future__ import annotations

from dataclasses import dataclass

from aipass_git.core import faults
from aipass_git.core.errors import AipassError
from aipass_git.mail import mailbox
from aipass_git.store import exchange, remote
from aipass_git.store.events import EventStore
from aipass_git.store.objects import Ident
from aipass_git.store.refs import RefUpdate


@dataclass(frozen=True)
class Claim:
    won: bool
    holder: str | None  # the clone that holds the claim, when one does
    why: str = ""  # when neither won nor held: what stopped the claim


def take(store: EventStore, agent: str, dispatch_id: str, author: Ident) -> Claim:
    root = store.repo.root
    here = remote.clone_name(root)
    assert here is not None
    ref = mailbox.ref_for(agent)
    name = remote.sync_remote(root)
    for _ in range(exchange.MAX_ROUNDS):
        if name is not None:
            try:
                exchange.exchange(store, name, [mailbox.KIND], author, under=ref[len(remote.LOCAL):])
            except AipassError as exc:
                return Claim(False, None, f"could not reach {name!r} to claim it: {exc.message}")
        line = mailbox.MailboxReader(store, agent).summary(dispatch_id)
        if line is None:
            return Claim(False, None, "it is no longer in the mailbox")
        if line.get("claim"):
            return Claim(line["claim"] == here, line["claim"])
        tip = store.tip(ref)
        drafted = store.draft(tip, mailbox.claim(agent, dispatch_id, here, author))
        if drafted is None:
            continue
        if name is not None:
            try:
                pushed = remote.push(root, name, [ref], {ref: drafted})[0]
            except AipassError as exc:
                return Claim(False, None, f"could not reach {name!r} to claim it: {exc.message}")
            if not pushed.ok:
                continue  # another clone wrote first: fetch what it wrote and look again
            faults.point("claim-pushed")
        if store.refs.apply([RefUpdate(ref, drafted, tip)]):
            return Claim(True, here)
        if name is not None:
            # the remote has our claim but a local event landed meanwhile: merging keeps both
            exchange.exchange(store, name, [mailbox.KIND], author, under=ref[len(remote.LOCAL):])
            return Claim(True, here)
    return Claim(False, None, f"the mailbox kept moving for {exchange.MAX_ROUNDS} tries")
