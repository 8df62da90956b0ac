"""`git aipass dispatch`: deliver a task and wake the agent through a detached supervisor."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aipass_git.core.errors import AipassError, RefusedError
from aipass_git.core.repo import Repo
from aipass_git.dispatch import providers
from aipass_git.dispatch.runtime import Runtime
from aipass_git.mail.postoffice import PostOffice


@dataclass
class Dispatched:
    message: dict[str, Any]
    state: str  # started | queued | bounced
    outcome: dict[str, Any] | None = None  # the "finished" event, with --wait


def dispatch(repo: Repo, to: str, subject: str, body: str, *, act_as: str | None = None) -> Dispatched:
    """Deliver the task, then start a supervisor (which leaves at once if the agent is busy)."""
    runtime = Runtime(repo)
    with PostOffice(repo, act_as=act_as) as po:
        agent = po.registry.resolve(to)
        if po.speaker.name == agent.name:
            raise RefusedError(
                f"@{agent.name} cannot dispatch to itself",
                "an agent does not wake itself; do the work in this session, or send mail instead",
            )
        template = providers.check(po.config, agent.provider, agent.model)
        binary = providers.find_binary(template[0], _agent_path())
        [message] = po.send([agent.name], subject, body, kind="dispatch")
        runtime.log("dispatched", agent.name, dispatch=message["id"], sender=message["from"])
        if binary is None:
            _bounce_missing(repo, runtime, agent.name, message, template[0])
            raise AipassError(
                f"@{agent.name}'s provider {agent.provider!r} runs {template[0]!r}, which is not on PATH; "
                f"the dispatch {message['id']} was bounced",
                f"install it, or change providers.{agent.provider}.argv in .aipass/config.yaml",
            )
    runtime.recover(agent.name)
    busy = runtime.is_busy(agent.name)
    start_supervisor(repo, agent.name)
    return Dispatched(message, "queued" if busy else "started")


def start_supervisor(repo: Repo, agent: str) -> int:
    runtime = Runtime(repo)
    log_path = runtime.state_path(agent).parent / "supervisor.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "aipass_git.dispatch.supervisor", str(repo.root), agent],
            cwd=repo.root, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            start_new_session=True,  # detached: the caller may exit, the session goes on
        )
    return proc.pid


def wait(repo: Repo, dispatch_id: str, timeout: float | None = None, poll: float = 0.1) -> dict[str, Any]:
    """Block until the supervisor reports the dispatch finished; returns that event."""
    runtime = Runtime(repo)
    deadline = None if timeout is None else time.monotonic() + timeout
    offset = 0
    while True:
        events, offset = runtime.events_since(offset)
        for event in events:
            if event.get("event") == "finished" and event.get("dispatch") == dispatch_id:
                return event
        if deadline is not None and time.monotonic() > deadline:
            raise AipassError(
                f"dispatch {dispatch_id} did not finish within {timeout:g} s",
                "it goes on in the background; see: git aipass status, git aipass log --follow",
            )
        time.sleep(poll)


def _agent_path() -> str:
    return f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"


def _bounce_missing(repo: Repo, runtime: Runtime, agent: str, message: dict[str, Any], program: str) -> None:
    reason = f"the provider program {program!r} is not on PATH"
    with PostOffice(repo, env={"AIPASS_AGENT": agent}) as po:
        po.send([message["from"]], f"bounce: {message['subject']}"[:200],
                f"Your dispatch {message['id']} to @{agent} could not be carried out.\n\nReason: {reason}\n",
                kind="bounce", thread=message["thread"], in_reply_to=message["id"],
                meta={"supervisor": True, "reason": reason})
        po.mark([message["id"]], "done")
    runtime.log("finished", agent, dispatch=message["id"], result="bounced", reason=reason, exit_code=None)
