"""What a rule does: dispatch an agent, send mail, start a plan, run a program.

Actions speak as the orchestrator (the repository's rules are its rules), whoever's
process fires them. Text is the rule's template with the event's fields filled in. A
program runs as an argument list, never through a shell, in the repository's root, with
a timeout, its process group killed when the time is up; its exit code and the tail of
its output are the outcome.
"""

from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass
from typing import Any

from aipass_git.agents.session import Session
from aipass_git.core.errors import AipassError
from aipass_git.core.names import strip_at
from aipass_git.dispatch import dispatcher
from aipass_git.flow import advance
from aipass_git.mail.postoffice import PostOffice
from aipass_git.triggers.rules import Rule, render

RUN_TIMEOUT = 60  # seconds, when the action names none
TAIL = 400  # characters of a program's output kept in the firing's record


@dataclass
class Done:
    action: str  # "dispatch @reviewer", "run git"
    ok: bool
    detail: str  # the dispatch or plan id, the exit code, or why it failed


def perform(session: Session, rule: Rule, fields: dict[str, str]) -> list[Done]:
    """Every action of RULE, in order; one that fails does not stop the next."""
    out = []
    for action in rule.do:
        try:
            out.append(_one(session, rule, action, fields))
        except AipassError as exc:
            kind = next(k for k in ("dispatch", "mail", "plan", "run") if k in action)
            out.append(Done(kind, False, exc.message))
    return out


def _one(session: Session, rule: Rule, action: dict[str, Any], fields: dict[str, str]) -> Done:
    meta = {"rule": rule.name, "event": fields.get("event", "")}
    if "dispatch" in action:
        to = strip_at(render(action["dispatch"], fields))
        sent = dispatcher.dispatch(session.repo, to, render(action["task"], fields)[:200],
                                   render(action.get("details", ""), fields) or f"Fired by the rule {rule.name!r}.",
                                   meta=meta, session=session)
        return Done(f"dispatch @{to}", True, sent.message["id"])
    if "mail" in action:
        to = strip_at(render(action["mail"], fields))
        with PostOffice(session) as po:
            [sent] = po.send([to], render(action["subject"], fields)[:200],
                             render(action.get("body", ""), fields) or f"Sent by the rule {rule.name!r}.", meta=meta)
        return Done(f"mail @{to}", True, sent["id"])
    if "plan" in action:
        return _plan(session, action, fields)
    return _run(session, action, fields)


def _plan(session: Session, action: dict[str, Any], fields: dict[str, str]) -> Done:
    name = render(action["plan"], fields)
    doc, _ = advance.make(session, name, " ".join(render(action["title"], fields).split())[:200],
                          {k: render(v, fields) for k, v in (action.get("set") or {}).items()})
    return Done(f"plan {name}", True, doc["id"])


def _run(session: Session, action: dict[str, Any], fields: dict[str, str]) -> Done:
    argv = [render(a, fields) for a in action["run"]]
    timeout = action.get("timeout", RUN_TIMEOUT)
    env = {**os.environ, **{f"AIPASS_EVENT_{k.upper().replace('.', '_')}": v for k, v in fields.items()}}
    try:
        proc = subprocess.Popen(argv, cwd=session.repo.root, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True)
    except OSError as exc:
        return Done(f"run {argv[0]}", False, f"could not start: {exc.strerror}")
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # its own session: the program and whatever it started
        proc.communicate()
        return Done(f"run {argv[0]}", False, f"killed after {timeout} s")
    tail = out.decode("utf-8", "replace").strip()[-TAIL:]
    return Done(f"run {argv[0]}", proc.returncode == 0, f"exit {proc.returncode}" + (f": {tail}" if tail else ""))
