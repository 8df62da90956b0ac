"""The supervisor: one detached process per busy agent, running its session.

It takes the agent's session lock (or leaves at once when another supervisor has it),
then wakes the agent for each undone dispatch in its mailbox, oldest first: desk ready,
prompt written, provider started and watched, retried, started fresh once, and finally
either answered (by the agent's reply, or a notice with the outcome), cancelled, or
bounced to the sender with the reason. Nothing a task holds may end the supervisor: a
wake that fails in any way bounces its dispatch and the queue goes on. Run as
`python -m aipass_git.dispatch.supervisor ROOT AGENT`.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from typing import Any

from filelock import Timeout

from aipass_git.agents import desk as desk_mod
from aipass_git.agents.desk import Desk
from aipass_git.agents.identity import agent_ident
from aipass_git.agents.session import Session
from aipass_git.agents.registry import Registry
from aipass_git.claims import claim as claims
from aipass_git.core import clock, config as config_mod, git, ids, pids
from aipass_git.core.errors import AipassError, RefusedError
from aipass_git.core.files import read as read_doc
from aipass_git.core.program import kick_triggers, program, run_detached
from aipass_git.core.repo import Repo, discover
from aipass_git.dispatch import claim, environment, path_claims, prompt, proctree, providers, recovery, replies, watchdog
from aipass_git.dispatch.recovery import pending_dispatches
from aipass_git.dispatch.runtime import Runtime
from aipass_git.mail import mailbox
from aipass_git.mail.postoffice import PostOffice
from aipass_git.store import remote
from aipass_git.store.events import EventStore
from aipass_git.memory import working
from aipass_git.core.text import plural

LOCK_WAIT_SECONDS = 2.0
CANCEL_POLL_SECONDS = 0.1  # how often a backoff wait looks for a cancel request


@dataclass
class Wake:
    """What one dispatch's attempts share."""
    task: dict[str, Any]
    registry: Registry
    passport: dict[str, Any]
    provider: providers.Provider
    desk: Desk
    head_before: str | None
    notes: list[str]
    started: float


class Supervisor:
    def __init__(self, repo: Repo, agent: str) -> None:
        self.repo = repo
        self.agent = agent
        self.runtime = Runtime(repo)
        self.current: dict[str, Any] = {}  # state fields of the dispatch being run
        self._session: Session | None = None
        self.stalled = False  # a dispatch could not be claimed: stop rather than spin
        self.waiting: set[str] = set()  # dispatches that wait for someone else's claim on a path

    @property
    def session(self) -> Session:
        """The agent's session, made when first needed: a retired agent's queue still
        starts, and each of its dispatches is bounced with the reason."""
        if self._session is None:
            self._session = Session.of_agent(self.repo, self.agent)
        return self._session

    def run(self) -> int:
        home = self._home_elsewhere()
        if home is not None:
            self.runtime.log("homed-elsewhere", self.agent, home=home)
            return 0
        lock = self.runtime.agent_lock(self.agent)
        config = config_mod.load(self.repo)
        limit = 1 + config.limits["max_queued_wakes"]
        wakes = 0
        while True:
            try:
                # A short wait, not zero: `status` and `dispatch` probe the lock for an
                # instant, and a supervisor must not mistake a probe for a session.
                lock.acquire(timeout=LOCK_WAIT_SECONDS)
            except Timeout:
                return 0  # the agent's session is running; it drains the queue itself
            try:
                # the lock may have come free because its holder died: settle its work first
                recovery.recover_locked(self.repo, self.agent)
                while wakes < limit:
                    picked = self._next()
                    if picked is None:
                        break
                    wakes += 1
                    self._wake_guarded(config, *picked)
            finally:
                self.runtime.write_state(self.agent, state="idle", since=clock.utc_now())
                lock.release()
            # A dispatch delivered while the lock was being released found it taken and
            # left; look once more so that it is never stranded.
            with EventStore(self.repo) as store:
                left = [line for line in pending_dispatches(store, self.agent) if line["id"] not in self.waiting]
            if not self.waiting:
                path_claims.clear_waiting(self.repo, self.agent)
            if not left or self.stalled:
                return 0
            if wakes >= limit:
                self.runtime.log("queue-limit", self.agent, waiting=len(left), limit=limit)
                return 0

    def _home_elsewhere(self) -> str | None:
        """The clone the agent's passport names as its home, when that is not this one:
        its dispatches are delivered here and run there."""
        try:
            home = Registry(self.repo).resolve(self.agent).passport.get("home")
        except AipassError:
            return None
        return home if home and home != remote.clone_name(self.repo.root, create=False) else None

    def _next(self) -> tuple[dict[str, Any], int] | None:
        """The oldest undone dispatch, marked as started in the state; cancelled ones on
        the way are answered. Under the pick lock, so a cancel sees either state."""
        with self.runtime.pick_lock(self.agent), PostOffice(self.session) as po:
            queue = pending_dispatches(po.store, self.agent)
            box = mailbox.MailboxReader(po.store, self.agent)
            for i, line in enumerate(queue):
                if line["id"] in self.waiting:
                    continue  # its claim was refused in this session already; a release starts us again
                task = {**box.message(line["id"]), "status": line["status"]}
                cancel = self.runtime.cancel_request(self.agent, task["id"])
                if cancel is not None:
                    self._cancelled(po, task, cancel["by"], running=False)
                    continue
                taken = claim.take(po.store, self.agent, task["id"], po.speaker.author)
                if not taken.won:
                    if taken.holder is None:
                        # unreachable remote: running unclaimed could run it twice; the
                        # next sync or wake tries again
                        self.runtime.log("claim-failed", self.agent, dispatch=task["id"], reason=taken.why)
                        self.stalled = True
                        return None
                    self.runtime.log("claimed-elsewhere", self.agent, dispatch=task["id"], clone=taken.holder)
                    continue
                # the dispatch is this clone's now (taking it again later is a no-op); its paths next
                held = path_claims.take(po.store, self.agent, task, po.speaker.author)
                if held is not None:
                    self._claim_refused(po, task, held)
                    continue
                self.current = {
                    "pid": os.getpid(), "dispatch": task["id"], "sender": task["from"], "subject": task["subject"],
                    "started": clock.utc_now(), "started_at": time.time(), "queued": len(queue) - i - 1,
                }
                self.runtime.write_state(self.agent, state="starting", **self.current)
                return task, len(queue) - i - 1
        return None

    def _claim_refused(self, po: PostOffice, task: dict[str, Any], held) -> None:
        """Someone else holds a path the dispatch claims: bounce it, or leave it queued
        until the claim frees (the releaser starts this supervisor again)."""
        reason = claims.holding(held)
        if path_claims.bounces(task):
            self._guard(task, replies.bounce, po, task, f"it claims paths someone else holds: {reason}")
            self.runtime.log("finished", self.agent, dispatch=task["id"], result="bounced", reason=reason, exit_code=None)
            self._advance_plan(task)
            return
        self.waiting.add(task["id"])
        path_claims.mark_waiting(self.repo, self.agent, task, held)
        self.runtime.log("claim-wait", self.agent, dispatch=task["id"], reason=reason)

    def _wake_guarded(self, config: config_mod.Config, task: dict[str, Any], queued: int) -> None:
        try:
            self.wake(config, task, queued)
        except Exception as exc:  # noqa: BLE001 - one task must never end the session
            import traceback  # deferred: ~9 ms, needed only when a wake fails

            detail = f"{type(exc).__name__}: {exc}"
            self.runtime.log("wake-failed", self.agent, dispatch=task["id"], error=detail,
                             traceback=traceback.format_exc(limit=8))
            try:
                with PostOffice(self.session) as po:
                    replies.bounce(po, task, f"aipass-git failed while running it ({detail})")
            except Exception as again:  # noqa: BLE001
                self.runtime.log("answer-failed", self.agent, dispatch=task["id"], error=str(again))
            self.runtime.log("finished", self.agent, dispatch=task["id"], result="bounced", reason=detail,
                             exit_code=None)
            self._advance_plan(task)

    def wake(self, config: config_mod.Config, task: dict[str, Any], queued: int) -> None:
        """One dispatch, start to answer: prepare, run its attempts, conclude."""
        self.runtime.log("wake", self.agent, dispatch=task["id"], sender=task["from"], queued=queued)
        wake = self._prepare(config, task)
        if wake is None:
            self._release_claims(task)
        else:
            attempts = self._attempts(config, wake)
            # the agent is done with its paths: free them before anyone hears the outcome
            self._release_claims(task)
            self._conclude(config, wake, attempts)
        self.runtime.forget_crashes(self.agent, task["id"])
        self._advance_plan(task)
        kick_triggers(self.repo.root, self.repo.runtime_dir)

    def _release_claims(self, task: dict[str, Any]) -> None:
        """The session is over: the claims it took would only block others (ARCHITECTURE.md, section 13)."""
        try:
            with EventStore(self.repo) as store:
                n = claims.release_all(store, self.agent, self.session.speaker.author, "released at the end of its session:")
            if n:
                self.runtime.log("claims-released", self.agent, dispatch=task["id"], count=n)
                path_claims.wake_waiters(self.repo)
        except AipassError as exc:  # the run is over either way; the claims expire by themselves
            self.runtime.log("claims-not-released", self.agent, dispatch=task["id"], error=exc.message)

    def _advance_plan(self, task: dict[str, Any]) -> None:
        """A plan's dispatch ended: let the plan move on (`plan advance`, in a process of
        its own: plans move in a layer above dispatch, and a slow plan must not hold this queue)."""
        plan_id = (task.get("meta") or {}).get("plan")
        if plan_id:
            run_detached(self.repo.root, "plan", "advance", plan_id)

    def _prepare(self, config: config_mod.Config, task: dict[str, Any]) -> Wake | None:
        """The agent's passport, provider and desk; a bounce (and None) when any is wrong."""
        started = time.monotonic()
        registry = Registry(self.repo)
        try:
            passport = registry.resolve(self.agent).passport
            provider = providers.check(config, passport["provider"], passport["model"])
            refusal = providers.refusal(provider)
            if refusal is not None:
                raise refusal
            desk = Desk(self.repo, config, self.agent)
            report = desk.ensure()
        except AipassError as exc:
            reason = f"the wake could not start: {exc.message}" + (f" ({exc.hint})" if exc.hint else "")
            self._bounce(task, reason, None, started)
            return None
        notes = [report.note] if report.note else []
        if report.note:
            self.runtime.log("desk", self.agent, dispatch=task["id"], note=report.note, dirty=report.dirty)
        crashes = self.runtime.crashes(self.agent, task["id"])
        if crashes:
            notes.append(f"a supervisor died while running this task before ({crashes} time{'s' if crashes > 1 else ''}); "
                         "your desk may hold its partial work")
        return Wake(task, registry, passport, provider, desk, desk.head(), notes, started)

    def _attempts(self, config: config_mod.Config, wake: Wake) -> list[watchdog.Attempt]:
        """Start after start until one succeeds, cannot succeed, is cancelled or the retries
        and the one fresh start are used up."""
        timeouts = config.timeouts
        plan = [False] * (1 + int(timeouts["retries"])) + [True]  # True: the fresh start
        attempts: list[watchdog.Attempt] = []
        for number, fresh in enumerate(plan, 1):
            if attempts and not self._backoff(timeouts, attempts[-1], number - 2, wake.task["id"], len(plan)):
                break  # cancelled while waiting
            said = []
            if fresh:
                said.append(f"this is a fresh start after {len(attempts)} failed attempts "
                            f"(last: {attempts[-1].reason}, exit {attempts[-1].exit_code})")
            elif attempts:
                said.append(f"this is attempt {number} of {len(plan)}; the last one ended: {attempts[-1].reason}; "
                            "your desk may hold its partial work")
            attempt = self._attempt(config, wake, wake.notes + said, number, len(plan))
            attempts.append(attempt)
            if attempt.ok or attempt.final:
                break
        return attempts

    def _conclude(self, config: config_mod.Config, wake: Wake, attempts: list[watchdog.Attempt]) -> None:
        """Answer the sender: cancelled, bounced, or (when the agent did not reply) a notice."""
        task, started = wake.task, wake.started
        cancel = self.runtime.cancel_request(self.agent, task["id"])
        last = attempts[-1] if attempts else None
        if cancel is not None:
            self._record_session(config, wake.desk, task, f"cancelled by @{cancel['by']}", started)
            with PostOffice(self.session) as po:
                self._cancelled(po, task, cancel["by"], running=True, started=started)
        elif last is not None and not last.ok:
            reason = self._reason(last, len(attempts), config.timeouts)
            self._record_session(config, wake.desk, task, f"bounced: {reason}", started)
            self._bounce(task, reason, last, started)
        elif last is not None:
            self._finish(config, task, wake.desk, wake.head_before, last, started)

    # -- one attempt ----------------------------------------------------------------------

    def _attempt(self, config, wake: Wake, notes: list[str], number: int, total: int) -> watchdog.Attempt:
        agent, task, desk, passport, provider = self.agent, wake.task, wake.desk, wake.passport, wake.provider
        task_id = task["id"]
        run_id = ids.new_id()
        run_dir = self.runtime.runs_dir(agent) / run_id
        run_dir.mkdir(parents=True)
        prompt_path = run_dir / "prompt.md"
        text = self._prompt(config, wake.registry, passport, task, desk, notes)
        prompt_path.write_text(text, encoding="utf-8")
        values = {"prompt": text, "prompt_file": str(prompt_path), "model": passport["model"] or "",
                  "workdir": str(desk.path), "agent": agent}
        attempt_state = {**self.current, "attempt": number, "attempts": total, "run": run_id, "run_dir": str(run_dir)}
        self.runtime.write_state(agent, state="starting", **attempt_state)
        try:
            argv = providers.render(provider.template, values)
        except RefusedError as exc:
            attempt = watchdog.Attempt(False, "start-failed", None, f"{exc.message}; {exc.hint}", 0.0)
        else:
            env = environment.provider_env(desk=desk.path, repo_root=self.repo.root, agent=agent,
                                           dispatch_id=task_id, extra=provider.env)
            self.runtime.log("start", agent, dispatch=task_id, run=str(run_dir), argv0=argv[0],
                             fresh=number == total, attempt=number, attempts=total)

            def running(pid: int) -> None:
                self.runtime.write_state(agent, state="running", provider_pid=pid,
                                         provider_start=pids.start_time(pid), attempt_started_at=time.time(),
                                         **attempt_state)

            timeouts = config.timeouts
            attempt = watchdog.run_once(
                argv, cwd=desk.path, env=env, run_dir=run_dir, run_id=run_id,
                limits=watchdog.Limits(timeouts["startup_seconds"], timeouts["stall_seconds"], timeouts["run_seconds"]),
                stdin=prompt_path if provider.stdin_prompt else None, activity=desk.activity, on_start=running,
                cancelled=lambda: self.runtime.cancel_request(agent, task_id) is not None,
            )
        self.runtime.log("exit", agent, dispatch=task_id, reason=attempt.reason, exit_code=attempt.exit_code,
                         rate_limited=attempt.rate_limited, seconds=round(attempt.duration, 3),
                         killed=attempt.leftovers, attempt=number)
        self.current["run_dir"] = str(run_dir)
        return attempt

    def _backoff(self, timeouts, attempt: watchdog.Attempt, n: int, task_id: str, total: int) -> bool:
        """Wait before the next start; False when the dispatch was cancelled meanwhile."""
        seconds = timeouts["rate_limit_backoff_seconds"] if attempt.rate_limited else timeouts["retry_backoff_seconds"] * 2**n
        if seconds <= 0:
            return self.runtime.cancel_request(self.agent, task_id) is None
        self.runtime.log("backoff", self.agent, dispatch=task_id, seconds=seconds, rate_limited=attempt.rate_limited)
        self.runtime.write_state(self.agent, state="backoff", attempt=n + 1, attempts=total,
                                 backoff_until=time.time() + seconds, rate_limited=attempt.rate_limited, **self.current)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.runtime.cancel_request(self.agent, task_id) is not None:
                return False
            time.sleep(min(CANCEL_POLL_SECONDS, max(0.0, deadline - time.monotonic())))
        return self.runtime.cancel_request(self.agent, task_id) is None

    # -- pieces -------------------------------------------------------------------------

    def _prompt(self, config, registry: Registry, passport, task, desk: Desk, notes: list[str]) -> str:
        agent = registry.resolve(self.agent)
        readme_path = agent.folder / "README.md"
        with PostOffice(self.session) as po:
            unread = [l for l in po.inbox() if l["status"] == "new"]
        return prompt.assemble(
            passport=passport,
            readme=(read_doc(self.repo.root, self.repo.rel(readme_path)) or b"").decode("utf-8", "replace"),
            memory=working.load(self.repo.root, self.agent),
            related=prompt.related_memories(self.repo, self.agent, f"{task['subject']}\n{task['body']}"),
            unread=unread,
            task=task,
            desk=str(desk.path),
            orchestrator=config.orchestrator,
            notes=notes,
            program=program(),
        )

    @staticmethod
    def _reason(attempt: watchdog.Attempt, count: int, timeouts) -> str:
        what = {
            "startup-timeout": f"the provider showed no output or progress within {timeouts['startup_seconds']:g} s of starting",
            "stall-timeout": f"the provider showed no output or desk activity for {timeouts['stall_seconds']:g} s",
            "run-timeout": f"the session ran past the run timeout ({timeouts['run_seconds']:g} s) and was stopped",
            "missing-binary": "the provider's program could not be started",
            "start-failed": f"the provider could not be started: {attempt.stderr_tail}",
            "error-result": "the provider reported an error in its result",
            "turn-limit": "the provider stopped at its turn limit before finishing",
            "exit": f"the provider exited with code {attempt.exit_code}",
        }[attempt.reason]
        tries = "" if attempt.final else f" ({count} starts, the last a fresh one)"
        return what + tries + (" - it reported a rate limit" if attempt.rate_limited else "")

    def _bounce(self, task, reason: str, attempt: watchdog.Attempt | None, started: float) -> None:
        with PostOffice(self.session) as po:
            self._guard(task, replies.bounce, po, task, reason,
                        exit_code=attempt.exit_code if attempt else None,
                        said=attempt.outcome.text if attempt else "",
                        stderr=attempt.stderr_tail if attempt and attempt.reason != "start-failed" else "",
                        log=self.current.get("run_dir"))
        self.runtime.log("finished", self.agent, dispatch=task["id"], result="bounced", reason=reason,
                         exit_code=attempt.exit_code if attempt else None, seconds=round(time.monotonic() - started, 3))

    def _cancelled(self, po: PostOffice, task, by: str, *, running: bool, started: float | None = None) -> None:
        self._guard(task, replies.cancelled, po, task, by=by, running=running, branch=desk_mod.branch_for(self.agent))
        self.runtime.clear_cancel(self.agent, task["id"])
        self.runtime.log("finished", self.agent, dispatch=task["id"], result="cancelled", reason=f"cancelled by @{by}",
                         running=running, exit_code=None,
                         seconds=round(time.monotonic() - started, 3) if started is not None else 0)

    def _guard(self, task, how, *args, **kwargs) -> None:
        """Answer the sender; a failure is logged, never fatal to the queue."""
        try:
            how(*args, **kwargs)
        except AipassError as exc:
            self.runtime.log("answer-failed", self.agent, dispatch=task["id"], error=exc.message)

    def _record_session(self, config, desk: Desk, task, outcome: str, started: float, commits: int = 0) -> None:
        """A session entry in the agent's memory, committed on its desk branch, so the
        agent's PR carries it. A failure here is logged, never fatal to the run."""
        text = (f"dispatch {task['id']} from @{task['from']}: {task['subject']} -> {outcome}; "
                f"{time.monotonic() - started:.1f} s; {plural(commits, 'commit')}")
        try:
            # authored as the agent: its branch holds only its own commits (the audit's branch rule)
            working.record(discover(desk.path), config, self.agent, "session", text[:1000],
                           message_by="supervisor", commit=desk.head(), author=agent_ident(self.agent))
        except (AipassError, OSError) as exc:
            self.runtime.log("session-not-recorded", self.agent, dispatch=task["id"], error=str(exc))

    def _finish(self, config, task, desk: Desk, head_before, attempt: watchdog.Attempt, started: float) -> None:
        head_after = desk.head()
        commits = []
        if head_after and head_after != head_before:
            span = f"{head_before}..{head_after}" if head_before else head_after
            commits = git.commits(desk.path, span)
        self._record_session(config, desk, task, "ok", started, len(commits))
        seconds = round(time.monotonic() - started, 3)
        with PostOffice(self.session) as po:
            line = mailbox.MailboxReader(po.store, self.agent).summary(task["id"])
            replied = line is not None and line["status"] == "done"
            if not replied:
                self._guard(task, replies.notice, po, task, exit_code=attempt.exit_code, seconds=seconds,
                            branch=desk.branch, commits=commits, said=attempt.outcome.text,
                            log=self.current.get("run_dir"))
        self.runtime.log("finished", self.agent, dispatch=task["id"], result="ok", replied=replied,
                         exit_code=attempt.exit_code, commits=len(commits), seconds=seconds)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    root, agent = args
    # orphaned tool processes of an attempt stay ours to find and kill (proctree.py)
    proctree.become_subreaper()
    repo = discover(root)
    try:
        return Supervisor(repo, agent).run()
    except AipassError as exc:
        sys.stderr.write(f"error: {exc.message}\n")
        Runtime(repo).log("supervisor-failed", agent, error=exc.message)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
