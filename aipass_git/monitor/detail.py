"""What the monitor shows under its panels on request: the newest message of a mailbox
(`m`) or the log of an agent's current or latest run (`l`), read through the commands'
own readers (a message is looked at, not marked read)."""

from __future__ import annotations

from pathlib import Path

from aipass_git.core.names import HUMAN
from aipass_git.core.repo import Repo
from aipass_git.core.text import for_terminal
from aipass_git.dispatch.runtime import Runtime
from aipass_git.dispatch.watchdog import tail
from aipass_git.mail import mailbox
from aipass_git.store.events import EventStore

LINES = 18


def newest_message(repo: Repo, owner: str | None) -> tuple[str, str]:
    """(title, text) of the newest message in OWNER's mailbox (the human's by default)."""
    owner = owner or HUMAN
    with EventStore(repo) as store:
        if store.tip(mailbox.ref_for(owner)) is None:
            return f"@{owner}'s newest message", "no mail yet"
        box = mailbox.MailboxReader(store, owner)
        lines = box.summaries()
        if not lines:
            return f"@{owner}'s newest message", "no mail yet"
        line = max(lines, key=lambda l: l["id"])
        full = box.message(line["id"]) or {}
    body = "\n".join(for_terminal(l) for l in str(full.get("body", "")).splitlines()[:LINES])
    head = f"{line['id'][:12]}  from @{line['from']}  {line['status']}  {for_terminal(line['subject'])}"
    return f"@{owner}'s newest message (git aipass read {line['id'][:12]})", f"{head}\n\n{body}"


def run_log(repo: Repo, agent: str | None, agents: list[dict]) -> tuple[str, str]:
    """(title, text): the tail of AGENT's current or latest run (by default the first
    agent that runs now)."""
    runtime = Runtime(repo)
    if agent is None:
        agent = next((a["agent"] for a in agents if a["state"] in ("starting", "running", "backoff")), None)
    if agent is None:
        return "run log", "nobody runs now: press a to choose an agent"
    run_dir = runtime.read_state(agent).get("run_dir")
    if not run_dir:
        runs = sorted(p for p in runtime.runs_dir(agent).glob("*") if p.is_dir()) if runtime.runs_dir(agent).is_dir() else []
        run_dir = str(runs[-1]) if runs else None
    if run_dir is None:
        return f"@{agent}'s run log", "no run yet"
    out = tail(Path(run_dir) / "stdout.log", lines=LINES)
    err = tail(Path(run_dir) / "stderr.log", lines=5)
    text = for_terminal(out) + (f"\n-- stderr --\n{for_terminal(err)}" if err else "")
    return f"@{agent}'s run log ({run_dir})", text or "(no output yet)"
