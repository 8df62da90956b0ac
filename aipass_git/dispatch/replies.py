"""What the sender of a dispatch is told when aipass-git, not the agent, answers it.

A bounce (it could not be carried out), a notice (the agent finished without replying),
or a cancellation. Each answer goes to the sender on the dispatch's thread and closes the
dispatch in the agent's mailbox. `answer_to` finds an answer already given, so that code
recovering from a crash never answers twice.
"""

from __future__ import annotations

from typing import Any

from aipass_git.core import secrets
from aipass_git.core.errors import AipassError
from aipass_git.dispatch.outcome import cut
from aipass_git.mail import mailbox
from aipass_git.mail.postoffice import PostOffice

STDERR_LINES = 20


def bounce(po: PostOffice, task: dict[str, Any], reason: str, *, exit_code: int | None = None,
           said: str = "", stderr: str = "", log: str | None = None) -> None:
    lines = [
        f"Your dispatch {task['id']} to @{po.speaker.name} could not be carried out.",
        "",
        f"Reason: {reason}",
        f"Exit code: {exit_code if exit_code is not None else '-'}",
        f"Log: {log or '-'}",
    ]
    if said:
        lines += ["", "What the provider said last:", cut(said)]
    lines += ["", "Last lines of stderr:", "\n".join(stderr.strip().splitlines()[-STDERR_LINES:]) or "(none)"]
    _send(po, task, f"bounce: {task['subject']}", "\n".join(lines), "bounce",
          {"reason": reason, "exit_code": exit_code})


def notice(po: PostOffice, task: dict[str, Any], *, exit_code: int | None, seconds: float,
           branch: str, commits: list[str], said: str, log: str | None) -> None:
    lines = [
        f"@{po.speaker.name} finished {task['id']} without a reply.",
        "",
        f"Exit code: {exit_code}",
        f"Duration: {seconds:.1f} s",
        f"Commits on {branch}: {len(commits)}",
        *(f"  {c}" for c in commits),
        f"Log: {log or '-'}",
    ]
    if said:
        lines += ["", "Its final words:", cut(said)]
    _send(po, task, f"done: {task['subject']}", "\n".join(lines), "notice",
          {"exit_code": exit_code, "commits": len(commits)})


def cancelled(po: PostOffice, task: dict[str, Any], *, by: str, running: bool, branch: str) -> None:
    where = (f"while it ran; what it committed so far stays on {branch}" if running
             else "before it started")
    _send(po, task, f"cancelled: {task['subject']}",
          f"Your dispatch {task['id']} to @{po.speaker.name} was cancelled by @{by} {where}.\n",
          "notice", {"cancelled": True, "cancelled_by": by, "running": running})


def answer_to(po: PostOffice, task: dict[str, Any]) -> dict[str, Any] | None:
    """An answer to TASK already in its sender's mailbox (from the agent or for it)."""
    sender_box = mailbox.MailboxReader(po.store, task["from"])
    for line in sender_box.summaries():
        if line["in_reply_to"] == task["id"] and line["from"] == po.speaker.name:
            return line
    return None


def _send(po: PostOffice, task: dict[str, Any], subject: str, body: str, kind: str, meta: dict) -> None:
    """Mail the sender and close the dispatch; a failed send is raised only after the
    dispatch is closed, so a sender who cannot be reached never blocks the queue."""
    failure = None
    body = secrets.redact(body)  # written by the tool from an agent's output: never refused, never leaked
    try:
        po.send([task["from"]], subject[: po.config.limits["subject_max_chars"]], body, kind=kind,
                thread=task["thread"], in_reply_to=task["id"], meta={"supervisor": True, **meta})
    except AipassError as exc:
        failure = exc
    po.mark([task["id"]], "done")
    if failure:
        raise failure
