"""The supervisor: one detached process per busy agent, running its session.

It takes the agent's session lock (or leaves at once when another supervisor has it),
then wakes the agent for each undone dispatch in its mailbox, oldest first: desk ready,
prompt written, provider started and watched, retried, started fresh once, and finally
either answered (by the agent's reply, or a notice with the outcome) or bounced to the
sender with the reason. Run as `python -m aipass_git.dispatch.supervisor ROOT AGENT`.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from aipass_git.agents.desk import Desk
from aipass_git.agents.registry import Registry
from aipass_git.core import clock, config as config_mod, git, ids
from aipass_git.core.errors import AipassError
from aipass_git.core.repo import Repo, discover
from aipass_git.dispatch import prompt, providers, watchdog
from aipass_git.dispatch.runtime import Runtime
from aipass_git.mail import mailbox
from aipass_git.mail.postoffice import PostOffice
from aipass_git.memory import working


LOCK_WAIT_SECONDS = 2.0


def pending_dispatches(po: PostOffice, agent: str) -> list[dict[str, Any]]:
    """Undone dispatches in AGENT's mailbox, oldest first."""
    lines = mailbox.MailboxReader(po.store, agent).summaries()
    return sorted((l for l in lines if l["kind"] == "dispatch" and l["status"] != "done"), key=lambda l: l["id"])


def agent_env(repo: Repo, agent: str, dispatch_id: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_") or k.startswith("GIT_CONFIG")}
    # the agent's own `git aipass ...` must be this installation, even from an inactive venv
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update({"AIPASS_AGENT": agent, "AIPASS_DISPATCH": dispatch_id, "AIPASS_REPO": str(repo.root)})
    return env


class Supervisor:
    def __init__(self, repo: Repo, agent: str) -> None:
        self.repo = repo
        self.agent = agent
        self.runtime = Runtime(repo)

    def run(self) -> int:
        from filelock import Timeout

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
                while wakes < limit:
                    with PostOffice(self.repo, env={"AIPASS_AGENT": self.agent}) as po:
                        queue = pending_dispatches(po, self.agent)
                    if not queue:
                        break
                    wakes += 1
                    self.wake(config, queue[0], queued=len(queue) - 1)
            finally:
                self.runtime.write_state(self.agent, state="idle", since=clock.utc_now())
                lock.release()
            # A dispatch delivered while the lock was being released found it taken and
            # left; look once more so that it is never stranded.
            with PostOffice(self.repo, env={"AIPASS_AGENT": self.agent}) as po:
                left = pending_dispatches(po, self.agent)
            if not left:
                return 0
            if wakes >= limit:
                self.runtime.log("queue-limit", self.agent, waiting=len(left), limit=limit)
                return 0

    def wake(self, config: config_mod.Config, task_line: dict[str, Any], queued: int) -> None:
        agent, task_id = self.agent, task_line["id"]
        started = time.monotonic()
        registry = Registry(self.repo)
        with PostOffice(self.repo, env={"AIPASS_AGENT": agent}) as po:
            task = {**mailbox.MailboxReader(po.store, agent).message(task_id), "status": task_line["status"]}
        self.runtime.log("wake", agent, dispatch=task_id, sender=task["from"], queued=queued)
        try:
            passport = registry.resolve(agent).passport
            template = providers.check(config, passport["provider"], passport["model"])
            desk = Desk(self.repo, config, agent)
            report = desk.ensure()
        except AipassError as exc:
            self._bounce(task, f"the wake could not start: {exc.message}", None, "", None, started)
            return
        if report.note:
            self.runtime.log("desk", agent, dispatch=task_id, note=report.note, dirty=report.dirty)
        head_before = desk.head()
        timeouts = config.timeouts
        notes = [report.note] if report.note else []
        attempts: list[watchdog.Attempt] = []
        run_dir = None
        for fresh in (False, True):
            if fresh:
                notes.append(
                    f"this is a fresh start after {len(attempts)} failed attempts "
                    f"(last: {attempts[-1].reason}, exit {attempts[-1].exit_code})"
                )
            text = self._prompt(config, registry, passport, task, desk, notes)
            tries = 1 if fresh else 1 + int(timeouts["retries"])
            for n in range(tries):
                run_dir = self.runtime.runs_dir(agent) / ids.new_id()
                run_dir.mkdir(parents=True)
                (run_dir / "prompt.md").write_text(text, encoding="utf-8")
                values = {"prompt": text, "prompt_file": str(run_dir / "prompt.md"), "model": passport["model"] or "",
                          "workdir": str(desk.path), "agent": agent}
                argv = providers.render(template, values)
                self.runtime.log("start", agent, dispatch=task_id, run=str(run_dir), argv0=argv[0], fresh=fresh, attempt=len(attempts) + 1)
                attempt = watchdog.run_once(
                    argv, cwd=desk.path, env=agent_env(self.repo, agent, task_id), run_dir=run_dir,
                    startup_seconds=timeouts["startup_seconds"], run_seconds=timeouts["run_seconds"],
                    progress=desk.head, on_start=lambda pid: self._running(task_id, pid, run_dir),
                )
                attempts.append(attempt)
                self.runtime.log("exit", agent, dispatch=task_id, reason=attempt.reason, exit_code=attempt.exit_code,
                                 rate_limited=attempt.rate_limited, seconds=round(attempt.duration, 3))
                if attempt.ok or attempt.reason == "missing-binary":
                    break
                if n + 1 < tries or not fresh:
                    self._backoff(timeouts, attempt, n)
            if attempts[-1].ok or attempts[-1].reason == "missing-binary":
                break
        last = attempts[-1]
        if not last.ok:
            reason = self._reason(last, len(attempts))
            self._record_session(config, desk, task, f"bounced: {reason}", started)
            self._bounce(task, reason, last.exit_code, last.stderr_tail, run_dir, started)
            return
        self._finish(config, task, desk, head_before, last, run_dir, started)

    # -- pieces -------------------------------------------------------------------------

    def _prompt(self, config, registry: Registry, passport, task, desk: Desk, notes: list[str]) -> str:
        agent = registry.resolve(self.agent)
        readme_path = agent.folder / "README.md"
        with PostOffice(self.repo, env={"AIPASS_AGENT": self.agent}) as po:
            unread = [l for l in po.inbox() if l["status"] == "new"]
        return prompt.assemble(
            passport=passport,
            readme=readme_path.read_text(encoding="utf-8") if readme_path.is_file() else "",
            memory=working.load(self.repo.root, self.agent),
            related=prompt.related_memories(self.repo, self.agent, f"{task['subject']}\n{task['body']}"),
            unread=unread,
            task=task,
            desk=str(desk.path),
            orchestrator=config.orchestrator,
            notes=notes,
        )

    def _running(self, task_id: str, pid: int, run_dir: Path) -> None:
        self.runtime.write_state(
            self.agent, state="running", pid=os.getpid(), provider_pid=pid, provider_pgid=pid,
            since=clock.utc_now(), dispatch=task_id, run=str(run_dir),
        )

    def _backoff(self, timeouts, attempt: watchdog.Attempt, n: int) -> None:
        seconds = timeouts["rate_limit_backoff_seconds"] if attempt.rate_limited else timeouts["retry_backoff_seconds"] * 2**n
        if seconds > 0:
            self.runtime.log("backoff", self.agent, seconds=seconds, rate_limited=attempt.rate_limited)
            time.sleep(seconds)

    @staticmethod
    def _reason(attempt: watchdog.Attempt, count: int) -> str:
        what = {
            "startup-timeout": "the provider showed no output or progress before the start-up timeout",
            "run-timeout": "the session ran past the run timeout and was stopped",
            "missing-binary": "the provider's program could not be started",
            "error-result": "the provider reported an error in its result",
            "exit": f"the provider exited with code {attempt.exit_code}",
        }[attempt.reason]
        tries = "" if attempt.reason == "missing-binary" else f" ({count} starts, the last a fresh one)"
        return what + tries + (" - it reported a rate limit" if attempt.rate_limited else "")

    def _bounce(self, task, reason: str, exit_code, stderr_tail: str, run_dir, started: float) -> None:
        body = "\n".join([
            f"Your dispatch {task['id']} to @{self.agent} could not be carried out.",
            "",
            f"Reason: {reason}",
            f"Exit code: {exit_code if exit_code is not None else '-'}",
            f"Log: {run_dir if run_dir else '-'}",
            "",
            "Last lines of stderr:",
            stderr_tail.strip() or "(none)",
        ])
        self._answer(task, f"bounce: {task['subject']}", body, "bounce", {"reason": reason, "exit_code": exit_code})
        self.runtime.log("finished", self.agent, dispatch=task["id"], result="bounced", reason=reason,
                         exit_code=exit_code, seconds=round(time.monotonic() - started, 3))

    def _record_session(self, config, desk: Desk, task, outcome: str, started: float, commits: int = 0) -> None:
        """A session entry in the agent's memory, committed on its desk branch, so the
        agent's PR carries it. A failure here is logged, never fatal to the run."""
        from aipass_git.memory import working

        text = (f"dispatch {task['id']} from @{task['from']}: {task['subject']} -> {outcome}; "
                f"{time.monotonic() - started:.1f} s; {commits} commit{'s' if commits != 1 else ''}")
        try:
            working.record(discover(desk.path), config, self.agent, "session", text[:1000],
                           message_by="supervisor", commit=desk.head())
        except (AipassError, OSError) as exc:
            self.runtime.log("session-not-recorded", self.agent, dispatch=task["id"], error=str(exc))

    def _finish(self, config, task, desk: Desk, head_before, attempt: watchdog.Attempt, run_dir, started: float) -> None:
        head_after = desk.head()
        commits = []
        if head_after and head_after != head_before:
            span = f"{head_before}..{head_after}" if head_before else head_after
            commits = git.output(["log", "--format=%h %s", span], desk.path).splitlines()
        self._record_session(config, desk, task, "ok", started, len(commits))
        seconds = round(time.monotonic() - started, 3)
        with PostOffice(self.repo, env={"AIPASS_AGENT": self.agent}) as po:
            line = mailbox.MailboxReader(po.store, self.agent).summary(task["id"])
        replied = line is not None and line["status"] == "done"
        if not replied:
            body = "\n".join([
                f"@{self.agent} finished {task['id']} without a reply.",
                "",
                f"Exit code: {attempt.exit_code}",
                f"Duration: {seconds:.1f} s",
                f"Commits on aipass/{self.agent}: {len(commits)}",
                *(f"  {c}" for c in commits),
                f"Log: {run_dir}",
            ])
            self._answer(task, f"done: {task['subject']}", body, "notice",
                         {"exit_code": attempt.exit_code, "commits": len(commits)})
        self.runtime.log("finished", self.agent, dispatch=task["id"], result="ok", replied=replied,
                         exit_code=attempt.exit_code, commits=len(commits), seconds=seconds)

    def _answer(self, task, subject: str, body: str, kind: str, meta: dict) -> None:
        """Mail the sender (bounce or notice) and close the dispatch; a failure is logged, not fatal."""
        with PostOffice(self.repo, env={"AIPASS_AGENT": self.agent}) as po:
            try:
                po.send([task["from"]], subject[:200], body, kind=kind, thread=task["thread"],
                        in_reply_to=task["id"], meta={"supervisor": True, **meta})
            except AipassError as exc:
                self.runtime.log("answer-failed", self.agent, dispatch=task["id"], error=exc.message)
            po.mark([task["id"]], "done")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    root, agent = args
    try:
        return Supervisor(discover(root), agent).run()
    except AipassError as exc:
        sys.stderr.write(f"error: {exc.message}\n")
        Runtime(discover(root)).log("supervisor-failed", agent, error=exc.message)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
