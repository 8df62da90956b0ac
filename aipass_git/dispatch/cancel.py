"""`git aipass cancel @agent [ID]`: stop a running dispatch, or take a queued one back.

A queued dispatch is answered and closed here, under the agent's pick lock, so the
supervisor either starts it before (then it is running) or never. A running one is
stopped by its supervisor, which polls for the request: it kills the attempt's whole
process tree, tells the sender and reports "cancelled"; this waits for that report.
Who may cancel: the dispatch's sender, the human, and the orchestrator.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from aipass_git.agents import desk, policy
from aipass_git.agents.session import Session
from aipass_git.core.errors import AipassError, RefusedError
from aipass_git.core.repo import Repo
from aipass_git.dispatch import path_claims, recovery, replies
from aipass_git.dispatch.runtime import Runtime
from aipass_git.mail import mailbox
from aipass_git.mail.postoffice import PostOffice

STOP_SECONDS = 10.0  # a supervisor polls every 50 ms; a kill takes milliseconds


@dataclass
class Cancelled:
    dispatch: dict[str, Any]
    running: bool
    outcome: dict[str, Any] | None  # the "finished" event


def cancel(repo: Repo, agent_name: str, dispatch_id: str | None = None, *, act_as: str | None = None,
           wait_seconds: float = STOP_SECONDS) -> Cancelled:
    runtime = Runtime(repo)
    with PostOffice(repo, act_as=act_as) as po:
        agent = po.address_any(agent_name)
        speaker = po.speaker.name
        recovery.heal_all(repo, [agent])  # a dead supervisor's dispatch is settled first
        with runtime.pick_lock(agent):
            state = runtime.read_state(agent)
            running_id = state.get("dispatch") if state.get("state", "idle") != "idle" and runtime.is_busy(agent) else None
            box = mailbox.MailboxReader(po.store, agent)
            line = _target(po, box, agent, dispatch_id, running_id)
            task = {**box.message(line["id"]), "status": line["status"]}
            policy.require_may_cancel(speaker, task["from"], task["id"], po.config.orchestrator)
            runtime.request_cancel(agent, task["id"], speaker)
            if task["id"] != running_id:
                with PostOffice(Session.of_agent(repo, agent)) as as_agent:
                    replies.cancelled(as_agent, task, by=speaker, running=False, branch=desk.branch_for(agent))
                runtime.clear_cancel(agent, task["id"])
                path_claims.clear_waiting(repo, agent, task["id"])  # a queue that waited for its claim waits no more
                event = runtime.log("finished", agent, dispatch=task["id"], result="cancelled",
                                    reason=f"cancelled by @{speaker}", running=False, exit_code=None)
                return Cancelled(task, False, event)
    return Cancelled(task, True, _stopped(repo, agent, task["id"], wait_seconds))


def _target(po: PostOffice, box: mailbox.MailboxReader, agent: str, raw_id: str | None,
            running_id: str | None) -> dict[str, Any]:
    if raw_id is None:
        if running_id is None:
            raise RefusedError(f"@{agent} is not running a dispatch", f"name a queued one: git aipass cancel @{agent} ID")
        line = box.summary(running_id)
    else:
        line = po.find(box, raw_id)
    if line is None or line["kind"] != "dispatch":
        raise RefusedError(f"{raw_id or running_id} is not a dispatch to @{agent}",
                           f"see what is queued: git aipass status; git aipass inbox @{agent}")
    if line["status"] == "done":
        raise RefusedError(f"dispatch {line['id']} to @{agent} has already ended", "nothing to cancel")
    return line


def _stopped(repo: Repo, agent: str, dispatch_id: str, wait_seconds: float) -> dict[str, Any] | None:
    """The "finished" event of the running dispatch, once its supervisor has stopped it."""
    # a supervisor that died meanwhile is settled by the healing between polls
    for event in Runtime(repo).follow(poll=0.05, until=time.monotonic() + wait_seconds,
                                      tick=lambda: recovery.heal_all(repo, [agent])):
        if event.get("event") == "finished" and event.get("dispatch") == dispatch_id:
            return event
    raise AipassError(
        f"asked @{agent}'s supervisor to stop {dispatch_id}, but it has not reported back within {wait_seconds:g} s",
        "it will stop at its next look; see: git aipass status, git aipass log --follow",
    )
