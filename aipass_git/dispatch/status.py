"""`git aipass status`: what every agent is doing, and how far it has got.

States: idle; queued (dispatches wait, nothing runs yet); starting; running (attempt N
of M); backoff (waiting before the next attempt, with the time left); claim-wait (its
next dispatch claims paths someone else holds: path_claims.py); elsewhere (its
dispatches were claimed by another clone, which runs them: claim.py). A supervisor found
dead is recovered on the spot (recovery.py), so status never shows a stale "running".
"""

from __future__ import annotations

import time
from typing import Any

from aipass_git.agents.registry import Registry
from aipass_git.core.repo import Repo
from aipass_git.dispatch import path_claims, recovery
from aipass_git.dispatch.runtime import Runtime
from aipass_git.core import config as config_mod
from aipass_git.mail import mailbox
from aipass_git.mail.summary_index import SummaryIndex
from aipass_git.mail.verified import Trust
from aipass_git.store import remote
from aipass_git.store.events import EventStore


def agents_status(repo: Repo) -> list[dict[str, Any]]:
    runtime = Runtime(repo)
    agents = [a.name for a in Registry(repo).all()]
    now = time.time()
    rows = []
    here = remote.clone_name(repo.root, create=False)
    claim_waits = path_claims.waiting(repo)
    with EventStore(repo) as store:
        trust = Trust(store, config_mod.load(repo))
        with SummaryIndex(store) as index:  # one query, not every mailbox read (summary_index.py)
            waiting = index.undone_dispatches()
        undone = {name: waiting.get(name, []) for name in agents}
        # a dispatch its sender's signature does not prove is not a task (mail/verified.py);
        # only mailboxes with undone dispatches are looked at
        unproven = {name: trust.unverified(name) if trust.enforced and undone[name] else {} for name in agents}
        undone = {name: [l for l in lines if l["id"] not in unproven[name]] for name, lines in undone.items()}
        pending = {name: [l for l in lines if l.get("claim") in (None, here)] for name, lines in undone.items()}
        restarted = set(recovery.heal_all(repo, agents, queue=True, waiting={n: bool(p) for n, p in pending.items()}))
        for name in agents:
            if name in restarted:
                pending[name] = [l for l in _undone(store, name)  # a recovery may have settled some
                                 if l.get("claim") in (None, here) and l["id"] not in unproven[name]]
            state = runtime.read_state(name)
            busy = state.get("state", "idle") != "idle" and runtime.is_busy(name)
            current = state.get("dispatch") if busy else None
            elsewhere = [{"dispatch": l["id"], "clone": l["claim"]} for l in undone[name] if l.get("claim") not in (None, here)]
            held_up = claim_waits.get(name) if not busy and pending[name] else None
            shown = state["state"] if busy else ("claim-wait" if held_up else "queued" if pending[name]
                                                 else "elsewhere" if elsewhere else "idle")
            started_at = state.get("started_at") if busy else None
            backoff_until = state.get("backoff_until") if busy and shown == "backoff" else None
            rows.append({
                "agent": name,
                "state": shown,
                "pid": state.get("pid") if busy else None,
                "since": state.get("started") if busy else state.get("since"),
                "dispatch": current,
                "subject": state.get("subject") if busy else None,
                "attempt": state.get("attempt") if busy else None,
                "attempts": state.get("attempts") if busy else None,
                "run_seconds": round(now - started_at, 1) if started_at else None,
                "backoff_seconds": round(max(0.0, backoff_until - now), 1) if backoff_until else None,
                "queued": len([p for p in pending[name] if p["id"] != current]),
                "restarted": name in restarted,
                "elsewhere": elsewhere,
                "unverified": len(unproven[name]),
                "claim_wait": held_up,  # {dispatch, holder, glob, until}: what a queued dispatch waits for
            })
    return rows


def _undone(store: EventStore, agent: str) -> list[dict[str, Any]]:
    return [l for l in mailbox.MailboxReader(store, agent).summaries() if l["kind"] == "dispatch" and l["status"] != "done"]
