"""Self-healing: a dead supervisor is noticed by whoever touches its agent next.

`heal` is cheap enough for every command that touches an agent (one small file read,
and a lock probe only when that file says a session runs). When the supervisor died:

- every process of its last attempt is killed (found by its run mark, proctree.py);
- its dispatch is answered exactly once: an answer already given stands; a dispatch the
  agent had replied to ends as "crashed" with the reply standing; otherwise it is run again
  up to `timeouts.crash_retries` times and then bounced, so a task that kills the
  supervisor every time cannot block the agent for good;
- a supervisor is started for what is left in the queue.

Recovery holds the agent's session lock, so two processes noticing the same crash do
the work once, and never while a live supervisor runs.
"""

from __future__ import annotations

from typing import Any

from aipass_git.agents import desk
from aipass_git.agents.session import Session
from aipass_git.claims import claim as claims
from aipass_git.core import clock, config as config_mod, pids
from aipass_git.core.errors import AipassError
from aipass_git.core.repo import Repo
from aipass_git.dispatch import path_claims, proctree, replies
from aipass_git.dispatch.launch import start_supervisor
from aipass_git.dispatch.runtime import Runtime
from aipass_git.mail import mailbox
from aipass_git.mail.postoffice import PostOffice
from aipass_git.mail.verified import Trust
from aipass_git.store import remote
from aipass_git.store.events import EventStore

IDLE = "idle"


def pending_dispatches(store: EventStore, agent: str) -> list[dict[str, Any]]:
    """Undone dispatches in AGENT's mailbox that this clone may run, oldest first: those
    another clone claimed run there (claim.py)."""
    lines = [l for l in mailbox.MailboxReader(store, agent).summaries() if l["kind"] == "dispatch" and l["status"] != "done"]
    if any(l.get("claim") for l in lines):
        here = remote.clone_name(store.repo.root, create=False)
        lines = [l for l in lines if l.get("claim") in (None, here)]
    if lines:
        # a dispatch its sender's signature does not prove never wakes anyone (trust: signed)
        trust = Trust(store, config_mod.load(store.repo))
        if trust.enforced:
            unproven = trust.unverified(agent)
            for line in lines:
                if line["id"] in unproven:
                    Runtime(store.repo).log_once("unverified-dispatch", agent, dispatch=line["id"], reason=unproven[line["id"]])
            lines = [l for l in lines if l["id"] not in unproven]
    return sorted(lines, key=lambda l: l["id"])


def heal(repo: Repo, agent: str, *, queue: bool = False, waiting: bool | None = None) -> bool:
    """Recover AGENT if its supervisor died; with QUEUE, also start one for a queue that
    has nobody draining it. WAITING says whether dispatches wait, when the caller has
    read that already (None: read it here if needed). Returns whether a supervisor was
    started."""
    runtime = Runtime(repo)
    if runtime.read_state(agent).get("state", IDLE) == IDLE and (not queue or waiting is False):
        return False
    from filelock import Timeout  # deferred: ~20-40 ms cold; most heals read one state file and stop above

    lock = runtime.agent_lock(agent)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return False  # a live supervisor runs the session (or another process recovers it)
    try:
        crashed = recover_locked(repo, agent)
        if not (crashed or queue):
            return False
        if crashed or waiting is None:
            with EventStore(repo) as store:
                waiting = bool(pending_dispatches(store, agent))
    finally:
        lock.release()
    if waiting and not crashed and path_claims.is_waiting(repo, agent):
        return False  # its queue waits for a claim: whoever frees it starts the supervisor (path_claims.py)
    if waiting:
        start_supervisor(repo, agent)
    return bool(waiting)


def heal_all(repo: Repo, agents: list[str], *, queue: bool = False,
             waiting: dict[str, bool] | None = None) -> list[str]:
    """`heal` for each of AGENTS; returns those whose queue was restarted. Never raises:
    a command that heals on the side must not fail because of it."""
    started = []
    for agent in agents:
        try:
            if heal(repo, agent, queue=queue, waiting=(waiting or {}).get(agent)):
                started.append(agent)
        except (AipassError, OSError) as exc:
            Runtime(repo).log("heal-failed", agent, error=str(exc))
    return started


def recover_locked(repo: Repo, agent: str) -> bool:
    """Recover from a dead supervisor; the caller holds AGENT's session lock (a supervisor
    that has just taken it over, or `heal`). Returns whether there was anything to recover."""
    runtime = Runtime(repo)
    state = runtime.read_state(agent)
    if state.get("state", IDLE) == IDLE:
        return False
    _recover(repo, runtime, agent, state)
    return True


def _recover(repo: Repo, runtime: Runtime, agent: str, state: dict[str, Any]) -> None:
    run = state.get("run")
    killed = proctree.kill_run(run) if run else set()
    pid, started = state.get("provider_pid"), state.get("provider_start")
    if pid and pids.alive(int(pid), started):
        killed |= proctree.kill_run(run or "-", group=int(pid))
    dispatch_id = state.get("dispatch")
    runtime.log("recovered", agent, stale_pid=state.get("pid"), dispatch=dispatch_id, state=state.get("state"),
                killed=len(killed))
    _release_claims(repo, runtime, agent)  # before the sender hears anything
    if dispatch_id:
        _settle(repo, runtime, agent, dispatch_id, state)
    runtime.write_state(agent, state=IDLE, since=clock.utc_now(), recovered_from=state.get("pid"))


def _release_claims(repo: Repo, runtime: Runtime, agent: str) -> None:
    """A dead session's claims on paths would block others until they expire: released
    (a retried dispatch claims its paths again; path_claims.py)."""
    try:
        with EventStore(repo) as store:
            released = claims.release_all(store, agent, Session.of_agent(repo, agent).speaker.author,
                                          "released after its session died:")
    except AipassError as exc:
        runtime.log("claims-not-released", agent, error=exc.message)
        return
    if released:
        runtime.log("claims-released", agent, count=released, why="recovered")
        path_claims.wake_waiters(repo)


def _settle(repo: Repo, runtime: Runtime, agent: str, dispatch_id: str, state: dict[str, Any]) -> None:
    """Decide what becomes of the dispatch the dead supervisor was running."""
    config = config_mod.load(repo)
    with PostOffice(Session.of_agent(repo, agent)) as po:
        box = mailbox.MailboxReader(po.store, agent)
        line = box.summary(dispatch_id)
        if line is None:
            return
        task = {**box.message(dispatch_id), "status": line["status"]}
        given = replies.answer_to(po, task)
        if given is not None or line["status"] == "done":
            if line["status"] != "done":
                po.mark([dispatch_id], "done")
            runtime.forget_crashes(agent, dispatch_id)
            runtime.clear_cancel(agent, dispatch_id)
            runtime.log("finished", agent, dispatch=dispatch_id, result="crashed", replied=True,
                        answer=given["kind"] if given else None,
                        reason="the supervisor died after the dispatch was answered; the answer stands")
            return
        cancel = runtime.cancel_request(agent, dispatch_id)
        if cancel is not None:
            result, reason = "cancelled", f"cancelled by @{cancel['by']}"
            _answer(runtime, agent, dispatch_id, replies.cancelled, po, task, by=cancel["by"], running=True,
                    branch=desk.branch_for(agent))
        else:
            crashes = runtime.count_crash(agent, dispatch_id)
            allowed = int(config.timeouts["crash_retries"])
            if crashes <= allowed:
                runtime.log("crashed", agent, dispatch=dispatch_id, crashes=crashes, will="retry")
                return
            result = "crashed"
            reason = (f"the supervisor running it died {crashes} time{'s' if crashes != 1 else ''} "
                      f"(timeouts.crash_retries allows {allowed} restart{'s' if allowed != 1 else ''})")
            _answer(runtime, agent, dispatch_id, replies.bounce, po, task, reason, log=state.get("run_dir"))
        runtime.forget_crashes(agent, dispatch_id)
        runtime.clear_cancel(agent, dispatch_id)
        runtime.log("finished", agent, dispatch=dispatch_id, result=result, reason=reason, exit_code=None)


def _answer(runtime: Runtime, agent: str, dispatch_id: str, how, *args, **kwargs) -> None:
    try:
        how(*args, **kwargs)
    except AipassError as exc:
        runtime.log("answer-failed", agent, dispatch=dispatch_id, error=exc.message)


def wake_owners(repo: Repo, owners: list[str], why: str) -> list[str]:
    """Start supervisors for those of OWNERS (mailboxes that just received events from
    another clone) that are active agents here with dispatches to run. Returns them."""
    from aipass_git.agents.registry import Registry  # deferred: only when mail came in

    registry = Registry(repo)
    runtime = Runtime(repo)
    woken = []
    for owner in dict.fromkeys(owners):
        try:
            registry.resolve(owner)
        except AipassError:
            continue  # not an active agent of this clone: nothing to wake
        with EventStore(repo) as store:
            if not pending_dispatches(store, owner):
                continue
        runtime.log(why, owner)
        heal(repo, owner, queue=True, waiting=True)
        woken.append(owner)
    return woken
