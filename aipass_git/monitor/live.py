"""`git aipass monitor`: the snapshot drawn with rich, redrawn every interval.

Keys (on a terminal): `q` quits, `a` shows the next agent only (cycling back to all),
`m` opens the newest message of that agent (or yours), `l` follows its run's log (or
that of the first agent running), the same key again closes it, `r` redraws at once. Without a terminal (`--once`, a pipe) one frame is printed as plain
text. Idle, it wakes once per interval, reads a few small files, and sleeps.
"""

from __future__ import annotations

import os
import select
import sys
import termios
import tty
from contextlib import contextmanager
from typing import Iterator

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from aipass_git.core.repo import Repo
from aipass_git.monitor import detail
from aipass_git.monitor.snapshot import Snapshot, Watcher, filtered

WORK_ROWS = 12
STATE_STYLE = {"idle": "dim", "queued": "yellow", "starting": "cyan", "running": "green", "backoff": "magenta",
               "elsewhere": "blue", "claim-wait": "yellow"}


def render(snap: Snapshot, agent: str | None = None, detail: tuple[str, str] | None = None) -> Group:
    agents = Table(title="agents", title_justify="left")
    for column in ("AGENT", "STATE", "ATTEMPT", "RUN TIME", "QUEUED", "TASK"):
        agents.add_column(column, no_wrap=column != "TASK")
    for a in snap.agents:
        if a["state"] == "idle" and not a["queued"] and agent is None and len(snap.agents) > 20:
            continue  # many agents: the idle ones with nothing queued are left out
        agents.add_row(a["agent"], Text(a["state"], style=STATE_STYLE.get(a["state"], "")),
                       f"{a['attempt']}/{a['attempts']}" if a["attempt"] else "-",
                       f"{int(a['run_seconds'])}s" if a["run_seconds"] is not None else "-",
                       str(a["queued"]), a["subject"] or "-")
    problems = Text("\n".join(snap.problems) or "none", style="red" if snap.problems else "dim")
    events = Text("\n".join(snap.events[:15]) or "none yet")
    work = Table(title="open PRs and plans", title_justify="left")
    for column in ("WHAT", "ID", "STATE", "TITLE"):
        work.add_column(column)
    rows = [("PR", pr["id"][:12], f"open by @{pr['agent']}", pr["title"]) for pr in snap.prs]
    rows += [("plan", d["id"][:12], f"{d['state']} {sum(p['state'] == 'done' for p in d['phases'])}/{len(d['phases'])}",
              d["title"]) for d in sorted(snap.plans, key=lambda d: d["id"], reverse=True)]
    for row in rows[:WORK_ROWS]:
        work.add_row(*row)
    if len(rows) > WORK_ROWS:
        work.add_row("", "", f"... {len(rows) - WORK_ROWS} more", "git aipass pr list / plan list")
    shown = f"@{agent} only" if agent else "all agents"
    return Group(
        Text(f"aipass monitor  {snap.taken}  {shown}   q quit · a next agent · m message · l run log · r refresh",
             style="bold"),
        agents, *([Panel(Text(detail[1]), title=detail[0], title_align="left")] if detail else []),
        Panel(problems, title="problems", title_align="left"),
        Panel(events, title="recent events", title_align="left"), work,
        *([Text("could not read: " + "; ".join(snap.errors), style="red")] if snap.errors else []))


def once(repo: Repo, agent: str | None = None, *, width: int = 120) -> str:
    """One frame as plain text (no colour, no escape codes)."""
    console = Console(width=width, color_system=None, force_terminal=False, record=True, file=open(os.devnull, "w"))
    console.print(render(filtered(Watcher(repo).take(), agent), agent))
    return console.export_text()


def run(repo: Repo, interval: float = 1.0) -> None:
    watcher = Watcher(repo)
    agents_seen: list[str] = []
    agent: str | None = None
    # drawn when a refresh is taken, not on rich's own timer: idle, one cheap redraw per interval
    opened: str | None = None  # "m" (a message) or "l" (a run log) under the panels
    with _keys() as key, Live(render(watcher.take()), auto_refresh=False, screen=True) as live:
        while True:
            snap = watcher.take()
            agents_seen = [a["agent"] for a in snap.agents]
            shown = (detail.newest_message(repo, agent) if opened == "m" else
                     detail.run_log(repo, agent, snap.agents) if opened == "l" else None)
            live.update(render(filtered(snap, agent), agent, shown), refresh=True)
            pressed = key(interval)
            if pressed in ("q", "\x03"):
                return
            if pressed == "a":
                names = [a for a in agents_seen]
                agent = names[(names.index(agent) + 1) if agent in names else 0] if names and agent != names[-1] else None
            if pressed in ("m", "l"):
                opened = None if opened == pressed else pressed


@contextmanager
def _keys() -> Iterator:
    """A reader of single key presses that waits at most a timeout (cbreak mode, restored after)."""
    fd = sys.stdin.fileno()
    if not os.isatty(fd):
        yield lambda timeout: (select.select([], [], [], timeout), None)[1]
        return
    saved = termios.tcgetattr(fd)
    tty.setcbreak(fd)
    try:
        def read(timeout: float) -> str | None:
            ready, _, _ = select.select([fd], [], [], timeout)
            return os.read(fd, 1).decode("utf-8", "replace") if ready else None
        yield read
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
