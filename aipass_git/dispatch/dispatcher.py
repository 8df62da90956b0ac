"""`git aipass dispatch`: deliver a task and wake the agent through a detached supervisor."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

from aipass_git.agents import policy
from aipass_git.core.errors import AipassError, RefusedError
from aipass_git.agents.session import Session
from aipass_git.core.repo import Repo
from aipass_git.dispatch import environment, path_claims, providers, recovery, replies
from aipass_git.dispatch.launch import start_supervisor
from aipass_git.dispatch.runtime import Runtime
from aipass_git.mail.postoffice import PostOffice
from aipass_git.store import remote

TERMINAL = ("ok", "bounced", "crashed", "cancelled")
HEAL_SECONDS = 1.0  # how often a waiting `dispatch --wait` checks that a supervisor still runs


class WaitTimeout(AipassError):
    """`dispatch --wait --timeout` ran out; the dispatch goes on. An exit code of its own,
    124 as timeout(1) uses, so scripts tell it from a bounce (1)."""

    exit_code = 124


@dataclass
class Dispatched:
    message: dict[str, Any]
    state: str  # started | queued | bounced | "delivered; runs at <clone>"
    outcome: dict[str, Any] | None = None  # the "finished" event, with --wait


def dispatch(repo: Repo, to: str, subject: str, body: str, *, act_as: str | None = None,
             allow_secret: bool = False, meta: dict[str, Any] | None = None,
             session: Session | None = None) -> Dispatched:
    """Deliver the task, then start a supervisor (which leaves at once if the agent is busy).
    SESSION: who sends it, when not whoever runs this process (a rule, as the orchestrator)."""
    if "\0" in body or "\0" in subject:
        raise RefusedError("the task holds a NUL byte", "a dispatch is text; remove the NUL byte (nothing was sent)")
    runtime = Runtime(repo)
    with PostOffice(session or repo, act_as=act_as) as po:
        po.check_text(subject, body, allow_secret=allow_secret)
        agent = po.registry.resolve(to)
        policy.require_may_dispatch(po.speaker.name, agent.name)
        home = agent.passport.get("home")
        if home and home != remote.clone_name(repo.root, create=False):
            # the agent runs in another clone: deliver here, and its next sync wakes it there
            [message] = po.send([agent.name], subject, body, kind="dispatch", allow_secret=allow_secret, meta=meta)
            runtime.log("dispatched", agent.name, dispatch=message["id"], sender=message["from"], home=home)
            return Dispatched(message, f"delivered; runs at {home}")
        provider = providers.check(po.config, agent.provider, agent.model)
        refusal = providers.refusal(provider)
        if refusal is not None:
            raise refusal
        binary = providers.find_binary(provider.program, environment.search_path())
        [message] = po.send([agent.name], subject, body, kind="dispatch", allow_secret=allow_secret, meta=meta)
        runtime.log("dispatched", agent.name, dispatch=message["id"], sender=message["from"])
        if binary is None:
            reason = f"the provider program {provider.program!r} is not on PATH"
            with PostOffice(po.session.as_agent(agent.name)) as po_agent:
                replies.bounce(po_agent, message, reason)
            runtime.log("finished", agent.name, dispatch=message["id"], result="bounced", reason=reason, exit_code=None)
            raise AipassError(
                f"@{agent.name}'s provider {agent.provider!r} runs {provider.program!r}, which is not on PATH; "
                f"the dispatch {message['id']} was bounced",
                f"install it, or change providers.{agent.provider}.argv in .aipass/config.yaml",
            )
    recovery.heal(repo, agent.name)
    busy = runtime.is_busy(agent.name)
    start_supervisor(repo, agent.name)
    return Dispatched(message, "queued" if busy else "started")


def where(repo: Repo, runtime: Runtime, agent: str | None, dispatch_id: str, seconds: float) -> str:
    """One line on a waited-for dispatch: the agent's state (attempt N/M, backoff) and time."""
    elapsed = f"{int(seconds) // 60}m{int(seconds) % 60:02d}s"
    if agent is None:
        return f"dispatch {dispatch_id[:12]}: delivered ({elapsed})"
    state = runtime.read_state(agent)
    held_up = path_claims.waiting(repo).get(agent) if state.get("dispatch") != dispatch_id else None
    if held_up and held_up.get("dispatch") == dispatch_id:
        return f"@{agent}: waits for {held_up['glob']}, claimed by @{held_up['holder']} ({elapsed})"
    if state.get("dispatch") != dispatch_id:
        return f"@{agent}: queued behind {state['dispatch'][:12]} ({elapsed})" if state.get("dispatch") else \
            f"@{agent}: waiting to start ({elapsed})"
    attempt = f", attempt {state['attempt']}/{state['attempts']}" if state.get("attempt") else ""
    return f"@{agent}: {state.get('state', 'idle')}{attempt} ({elapsed})"


def wait(repo: Repo, dispatch_id: str, timeout: float | None = None, poll: float = 0.1,
         agent: str | None = None, on_tick: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Block until the dispatch reaches a terminal state (ok, bounced, crashed, cancelled);
    returns that "finished" event. Meanwhile, a supervisor that died is noticed and its
    queue restarted, so the wait ends even then. ON_TICK hears, a few times a second, a
    line saying where the run is (for a spinner)."""
    started = time.monotonic()
    deadline = None if timeout is None else started + timeout
    next_heal = started + HEAL_SECONDS
    who = [agent]
    runtime = Runtime(repo)

    def heal() -> None:
        nonlocal next_heal
        if on_tick is not None:
            on_tick(where(repo, runtime, who[0], dispatch_id, time.monotonic() - started))
        if who[0] is not None and time.monotonic() >= next_heal:
            next_heal = time.monotonic() + HEAL_SECONDS
            recovery.heal_all(repo, [who[0]], queue=True)

    for event in runtime.follow(poll=poll, until=deadline, tick=heal):
        if event.get("dispatch") != dispatch_id:
            continue
        if event.get("event") == "finished":
            return event
        who[0] = who[0] or event.get("agent")
    raise WaitTimeout(
        f"dispatch {dispatch_id} did not finish within {timeout:g} s",
        "it goes on in the background; see: git aipass status, git aipass log --follow",
    )
