"""`git aipass status`: what every agent is doing (idle, running, queued)."""

from __future__ import annotations

from typing import Any

from aipass_git.agents.registry import Registry
from aipass_git.core.repo import Repo
from aipass_git.dispatch.runtime import Runtime
from aipass_git.mail import mailbox
from aipass_git.store.events import EventStore


def agents_status(repo: Repo) -> list[dict[str, Any]]:
    runtime = Runtime(repo)
    rows = []
    with EventStore(repo) as store:
        for agent in Registry(repo).all():
            pending = [
                l for l in mailbox.MailboxReader(store, agent.name).summaries()
                if l["kind"] == "dispatch" and l["status"] != "done"
            ]
            state = runtime.read_state(agent.name)
            busy = runtime.is_busy(agent.name)
            if state.get("state") == "running" and not busy:
                shown = "crashed"  # cleared by the next dispatch (Runtime.recover)
            elif busy:
                shown = "running"
            else:
                shown = "queued" if pending else "idle"
            current = state.get("dispatch") if busy else None
            rows.append({
                "agent": agent.name,
                "state": shown,
                "pid": state.get("pid") if busy else None,
                "since": state.get("since"),
                "dispatch": current,
                "queued": len([p for p in pending if p["id"] != current]),
            })
    return rows
