"""What the monitor shows, gathered through the commands' own code: the agents as `status`
sees them, the problems (bounces and crashes, blocked or stuck plans, open breakers, claim waits, conflicts ahead,
leftovers of killed processes), the latest events on every event ref and in the runtime
log, and the open PRs and plans.

A `Watcher` keeps what it read and reads again only what changed: the agents' state every
refresh (a few small files), the refs, PRs and plans only when the event-ref folders or
packed-refs changed, the runtime log from its last offset.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from aipass_git.agents.registry import Registry
from aipass_git.core import clock, git
from aipass_git.core.errors import AipassError
from aipass_git.core.files import event_ref_folders, stamps
from aipass_git.core.repo import Repo
from aipass_git.dispatch.runtime import Runtime
from aipass_git.dispatch.status import agents_status
from aipass_git.plans import plan as plan_mod
from aipass_git.prs import conflicts, record
from aipass_git.setup import leftovers
from aipass_git.store.events import EventStore

EVENTS_KEPT = 200  # runtime events remembered for the events panel and the problems
AGENTS_EVERY = 30.0  # seconds between re-reads of the agents when nothing was logged (run times are aged in between)


@dataclass
class Snapshot:
    taken: str
    agents: list[dict[str, Any]]
    problems: list[str]
    events: list[str]  # newest first
    prs: list[dict[str, Any]]
    plans: list[dict[str, Any]]
    errors: list[str] = field(default_factory=list)  # what could not be read this time


class Watcher:
    def __init__(self, repo: Repo) -> None:
        self.repo = repo
        self.runtime = Runtime(repo)
        self.offset = 0
        self.recent: list[dict[str, Any]] = []
        self.refs_seen: tuple | None = None
        self.ref_lines: list[tuple[str, str]] = []
        self.prs: list[dict[str, Any]] = []
        self.plans: list[dict[str, Any]] = []
        self.retired: set[str] = set()
        self.agents: list[dict[str, Any]] = []
        self.problems: list[str] = []
        self.agents_read = float("-inf")
        self.states_seen = 0

    def _states(self) -> int:
        """A fingerprint of every agent's state file (a stat each, no read)."""
        total = 0
        try:
            with os.scandir(self.runtime.root / "agents") as folders:
                for folder in folders:
                    try:
                        total = hash((total, folder.name, os.stat(os.path.join(folder.path, "state.json")).st_mtime_ns))
                    except OSError:
                        continue
        except OSError:
            return 0
        return total

    def take(self) -> Snapshot:
        errors: list[str] = []
        records, self.offset = self.runtime.events_since(self.offset)
        self.recent = (self.recent + records)[-EVENTS_KEPT:]
        signature = stamps(event_ref_folders(self.repo.common_dir))
        moved = signature != self.refs_seen
        states = self._states()
        if moved or records or states != self.states_seen or time.monotonic() - self.agents_read >= AGENTS_EVERY:
            # an agent's state is its state file, its queue a mailbox ref: with neither
            # moving, only the run times advance
            self.states_seen = states
            try:
                self.agents = agents_status(self.repo)
            except AipassError as exc:
                self.agents, errors = [], [exc.message]
            self.agents_read = time.monotonic()
            if moved:
                self.refs_seen = signature
                try:
                    self._read_refs()
                except AipassError as exc:
                    errors.append(exc.message)
            self.problems = self._problems()
        age = time.monotonic() - self.agents_read
        agents = [{**a, "run_seconds": a["run_seconds"] + age} if a.get("run_seconds") is not None else a
                  for a in self.agents]
        return Snapshot(clock.utc_now(), agents, self.problems, self._events(), self.prs, self.plans, errors)

    def _read_refs(self) -> None:
        # the newest tip of every event ref, one git process: what just happened on each
        text = git.output(["for-each-ref", "--sort=-committerdate", "--count=30",
                           "--format=%(committerdate:iso-strict)\t%(contents:subject)", "refs/aipass/"], self.repo.root)
        self.ref_lines = [tuple(line.split("\t", 1)) for line in text.splitlines() if "\t" in line]  # type: ignore[misc]
        with EventStore(self.repo) as store:
            self.prs = [p for p in record.PRBook(store).all() if p["state"] == "open"]
            self.plans = [d for d in plan_mod.PlanBook(store).all() if d["state"] in ("open", "blocked")]
        try:
            self.retired = {a.name for a in Registry(self.repo).all(include_retired=True) if not a.active}
        except AipassError:
            self.retired = set()

    def _problems(self) -> list[str]:
        found = []
        for r in reversed(self.recent):
            if r.get("event") == "finished" and r.get("result") in ("bounced", "crashed"):
                found.append(f"{r.get('time', '')[11:19]} @{r.get('agent', '?')} {r['result']}: "
                             f"{' '.join(str(r.get('reason') or '').split())[:120]}")
            elif r.get("event") == "rule-held" and r.get("reason") == "tripped":
                found.append(f"{r.get('time', '')[11:19]} rule {r.get('rule')!r} tripped its breaker")
            elif r.get("event") in ("audit-failed", "triggers-broken", "plan-merge-waits"):
                found.append(f"{r.get('time', '')[11:19]} {r['event']}: "
                             f"{r.get('branch') or r.get('error') or r.get('dispatch') or ''}")
        now = datetime.now(timezone.utc)
        for doc in self.plans:
            found += [f"plan {line}" for line in plan_mod.stuck(doc, self.retired, now)]
        found += [f"@{a['agent']} waits for {a['claim_wait']['glob']}, claimed by @{a['claim_wait']['holder']}"
                  for a in self.agents if a.get("claim_wait")]
        found += [f"conflict ahead: {' and '.join(c['agents'])} in {', '.join(c['files'])}"
                  for c in conflicts.last(self.repo).get("conflicts", [])]
        try:
            found += [f"leftover {l.kind} {l.where}: {l.detail}" for l in leftovers.find(self.repo)]
        except (AipassError, OSError):
            pass
        return found[:20]

    def _events(self) -> list[str]:
        lines = [(r.get("time", ""), _runtime_line(r)) for r in self.recent[-30:] if r.get("event")]
        lines += [(when[:19].replace("T", " "), subject) for when, subject in self.ref_lines]
        stamped = sorted(((t.replace(" ", "T")[:19], text) for t, text in lines), reverse=True)
        return [f"{t[11:19]} {text}" for t, text in stamped[:30]]


def _runtime_line(r: dict[str, Any]) -> str:
    who = f"@{r['agent']} " if r.get("agent") else ""
    extra = r.get("result") or r.get("rule") or r.get("reason") or ""
    return f"{who}{r['event']}" + (f" {extra}" if extra else "") + (f" {str(r.get('dispatch'))[:12]}" if r.get("dispatch") else "")


def filtered(snapshot: Snapshot, agent: str | None) -> Snapshot:
    """SNAPSHOT with only AGENT's rows and lines (None: everything)."""
    if agent is None:
        return snapshot
    mark = f"@{agent}"
    return Snapshot(snapshot.taken, [a for a in snapshot.agents if a["agent"] == agent],
                    [p for p in snapshot.problems if mark in p], [e for e in snapshot.events if agent in e],
                    [p for p in snapshot.prs if p["agent"] == agent],
                    [d for d in snapshot.plans if any(p["owner"] == agent for p in d["phases"])], snapshot.errors)

