"""One sweep: what happened since the last one, the rules it fires, the schedules that are
due, and the built-in sweeps (ARCHITECTURE.md, section 11).

Whoever sees an event kicks a sweep (core/program.kick_triggers: the supervisor, the
merge queue, mail, plans, the hooks), or the daemon runs them; either way one sweep runs
at a time per repository. A kick that finds a sweep running leaves a mark, and the
running one looks again before it stops, so nothing that happened is left for later.

The positions (the runtime log's offset, the event refs' and base branch's tips, when
each schedule last fired) live in `<git common dir>/aipass/triggers/state.json`, saved
after every firing with the firings of the batch in hand: a sweep killed in the middle
is taken up by the next one, which fires the rest of that batch and not again what was
fired. A repository without `.aipass/triggers.yaml` keeps no state: its first rule
starts from the moment it appears.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from aipass_git.agents.registry import Registry
from aipass_git.agents.session import Session
from aipass_git.core import clock, config as config_mod, faults, git, program
from aipass_git.core.canonical import encode, write_atomic
from aipass_git.core.errors import AipassError
from aipass_git.core.names import HUMAN
from aipass_git.core.repo import Repo
from aipass_git.dispatch import dispatcher
from aipass_git.dispatch.runtime import Runtime
from aipass_git.mail.postoffice import PostOffice
from aipass_git.mail.summary_index import SummaryIndex
from aipass_git.store import locks, remote
from aipass_git.store.events import EventStore
from aipass_git.store.verify import Verifier, roster_at
from aipass_git.triggers import actions, observe, rules as rules_mod, schedule, watch
from aipass_git.triggers.gates import Gates, matches

STATE_VERSION = 1


@dataclass
class Fired:
    rule: str
    event: str
    source: str
    actions: list[dict[str, Any]] = field(default_factory=list)
    skipped: str = ""  # why the gates held it back


def state_dir(repo: Repo) -> Path:
    return repo.runtime_dir / "triggers"


def pending_mark(repo: Repo) -> Path:
    return state_dir(repo) / "pending"


def sweep(repo: Repo, *, now: datetime | None = None) -> list[Fired]:
    """Fire what is due; returns the firings (and the held-back ones) of this call. When
    another sweep runs, leave it a mark and return at once: it will look again."""
    folder = state_dir(repo)
    folder.mkdir(parents=True, exist_ok=True)
    mark = pending_mark(repo)
    mark.touch()
    lock = locks.Held(repo.runtime_dir / "locks" / "triggers.lock", "a triggers sweep")
    try:
        with lock.acquired(0, "another sweep is running; it will see this one's events"):
            fired: list[Fired] = []
            before = os.environ.get(program.SWEEPING)
            os.environ[program.SWEEPING] = str(repo.root)  # the actions' own kicks only mark
            try:
                while mark.exists():
                    mark.unlink(missing_ok=True)
                    fired += _once(repo, now or datetime.now(timezone.utc))
            finally:
                if before is None:
                    os.environ.pop(program.SWEEPING, None)
                else:
                    os.environ[program.SWEEPING] = before
            return fired
    except AipassError as exc:
        if "another sweep is running" in (exc.hint or ""):
            return []
        raise


def _once(repo: Repo, now: datetime) -> list[Fired]:
    triggers = rules_mod.load(repo)
    path = state_dir(repo) / "state.json"
    state = _load_state(path)
    here = remote.clone_name(repo.root)
    config = config_mod.load(repo)
    base_ref = f"refs/heads/{config.base_branch}"
    new_tips = observe.tips(repo)
    new_base = git.resolve_commit(repo.root, base_ref)
    log_end = Runtime(repo).events_path.stat().st_size if Runtime(repo).events_path.exists() else 0
    if not triggers.rules and triggers.inbox_hours is None and triggers.stale_hours is None:
        if path.exists():
            path.unlink()  # no rules: the next rule starts from the moment it appears
        return []
    if state is None:  # first sweep with rules: this moment is the start
        _save(path, {"v": STATE_VERSION, "offset": log_end, "tips": new_tips, "base": new_base,
                     "schedules": {r.name: _stamp(now) for r in triggers.for_event("schedule")}, "rules": {},
                     "batch": [], "inbox": {}, "stale": {}})
        return []
    with EventStore(repo) as store:
        trusted = _trust(store, config)
        seen = observe.ref_events(repo, state["tips"], new_tips, here, trusted)
        seen += observe.base_events(repo, config.base_branch, state.get("base"), new_base)
        records, offset = Runtime(repo).events_since(state["offset"])
        seen += observe.runtime_events(records)
        observe.details(store, seen)
    session = Session.of_orchestrator(repo)
    gates = Gates(state)
    done_in_batch = set(state.get("batch", []))
    fired: list[Fired] = []
    stamp = now.timestamp()
    for event in seen:
        for rule in triggers.for_event(event.kind):
            key = f"{rule.name}\x1f{event.source}\x1f{event.kind}"
            if key in done_in_batch:
                continue  # a sweep killed after this firing already did it
            fields = {"event": event.kind, "rule": rule.name, "time": _stamp(now),
                      "clone": here, **event.fields}
            if not matches(rule, fields, here):
                continue
            fired.append(_fire(repo, session, gates, rule, fields, event.source, stamp))
            done_in_batch.add(key)
            state["batch"] = sorted(done_in_batch)
            _save(path, state)
            faults.point("trigger-fired")
    fired += _watch(repo, session, gates, triggers, state, records, here, now)
    for rule in triggers.for_event("schedule"):
        last = state["schedules"].get(rule.name)
        if last is None:
            state["schedules"][rule.name] = _stamp(now)
        elif schedule.due(rule, clock.parse(last), now) and matches(rule, {}, here):
            state["schedules"][rule.name] = _stamp(now)
            _save(path, state)  # before the actions: a crash costs this tick, never a second run
            fields = {"event": "schedule", "rule": rule.name, "time": _stamp(now), "clone": here}
            fired.append(_fire(repo, session, gates, rule, fields, f"schedule {last}", stamp))
    for name in [n for n in state["schedules"] if n not in {r.name for r in triggers.for_event("schedule")}]:
        del state["schedules"][name]
    fired += _sweep_inbox(repo, session, triggers, state, now)
    fired += _sweep_stale(repo, session, triggers, state, now)
    state.update(offset=offset, tips=new_tips, base=new_base, batch=[])
    _save(path, state)
    return fired


def _watch(repo: Repo, session: Session, gates: Gates, triggers, state: dict[str, Any], records: list[dict[str, Any]],
           here: str, now: datetime) -> list[Fired]:
    """Errors and piled-up warnings in the run logs, for `on: error` and `on: warnings` rules."""
    on_error, on_warnings = triggers.for_event("error"), triggers.for_event("warnings")
    if not on_error and not on_warnings:
        state.pop("watch", None)
        return []
    watcher = watch.Watcher(repo, state)
    watcher.note_runs(records)
    errors, warnings = watcher.look()
    fired = []
    base = {"time": _stamp(now), "clone": here}
    for found in errors:
        count = watcher.count(found, _stamp(now))
        fields = {**base, "event": "error", "agent": found.agent, "error.message": found.message,
                  "error.where": found.where, "error.fingerprint": found.fingerprint, "error.count": str(count),
                  "error.lines": "\n".join(found.lines), "error.log": found.log}
        for rule in on_error:
            if any(m in found.message or found.fingerprint.startswith(m) for m in rule.mute):
                continue
            if watch.due(count, rule.repeats) and matches(rule, {**fields, "rule": rule.name}, here):
                fired.append(_fire(repo, session, gates, rule, {**fields, "rule": rule.name}, found.log, now.timestamp()))
    for agent, lines in warnings.items():
        count, kept = watcher.pile(agent, lines)
        fields = {**base, "event": "warnings", "agent": agent, "warnings.count": str(count), "warnings.lines": "\n".join(kept)}
        due = [r for r in on_warnings if count >= r.pile and matches(r, {**fields, "rule": r.name}, here)]
        for rule in due:
            fired.append(_fire(repo, session, gates, rule, {**fields, "rule": rule.name}, f"warnings of {agent}", now.timestamp()))
        if due:
            watcher.digested(agent)
    return fired


def _fire(repo: Repo, session: Session, gates: Gates, rule, fields: dict[str, str], source: str, now: float) -> Fired:
    ok, why = gates.admit(rule, fields, now)
    runtime = Runtime(repo)
    if not ok:
        runtime.log("rule-held", None, rule=rule.name, on=fields["event"], source=source, reason=why)
        if why == "tripped":
            _tell_tripped(session, rule)
        return Fired(rule.name, fields["event"], source, skipped=why)
    done = [asdict(d) for d in actions.perform(session, rule, fields)]
    runtime.log("fired", fields.get("agent") or None, rule=rule.name, on=fields["event"], source=source, actions=done)
    return Fired(rule.name, fields["event"], source, done)


def _tell_tripped(session: Session, rule) -> None:
    """The human hears of a tripped breaker once per trip: a loop that stopped itself."""
    b = rule.breaker
    try:
        with PostOffice(session) as po:
            po.send([f"@{HUMAN}"], f"rule {rule.name!r} stopped: it fired {b['trips_after']} times in {b['within_seconds']} s"[:200],
                    f"The rule {rule.name!r} in {rules_mod.FILE} fired {b['trips_after']} times within "
                    f"{b['within_seconds']} s, which looks like a loop (agents waking each other). It fires "
                    f"nothing for {b['cooldown_seconds']} s.\n\nSee what it did: git aipass log | grep {rule.name!r}\n")
    except AipassError as exc:
        Runtime(session.repo).log("rule-trip-not-told", None, rule=rule.name, error=exc.message)


def _sweep_inbox(repo: Repo, session: Session, triggers, state: dict[str, Any], now: datetime) -> list[Fired]:
    """Wake each agent whose mail has waited unread longer than the sweep's hours, once
    per oldest unread message (a new wake only when that one is read and another waits)."""
    if triggers.inbox_hours is None:
        return []
    runtime = Runtime(repo)
    fired = []
    cutoff = now.timestamp() - 3600 * triggers.inbox_hours
    woken = state.setdefault("inbox", {})
    with EventStore(repo) as store:
        with SummaryIndex(store) as index:  # one query for every mailbox (summary_index.py), not a read each
            waiting = index.unread_mail()
        for agent in [a.name for a in Registry(repo).all() if a.name not in triggers.inbox_skip]:
            unread = [l for l in waiting.get(agent, []) if clock.parse(l["created"]).timestamp() < cutoff]
            if not unread or woken.get(agent) == unread[0]["id"] or runtime.at_work(agent):
                continue
            woken[agent] = unread[0]["id"]
            try:
                sent = dispatcher.dispatch(repo, agent, f"{len(unread)} unread message{'s' if len(unread) > 1 else ''} "
                                           f"waiting over {triggers.inbox_hours} h",
                                           "Read your mail and act on it: git aipass inbox\n", session=session,
                                           meta={"rule": "inbox-sweep"})
                outcome = [{"action": f"dispatch @{agent}", "ok": True, "detail": sent.message["id"]}]
            except AipassError as exc:
                outcome = [{"action": f"dispatch @{agent}", "ok": False, "detail": exc.message}]
            runtime.log("fired", agent, rule="inbox-sweep", on="sweep", source=unread[0]["id"], actions=outcome)
            fired.append(Fired("inbox-sweep", "sweep", unread[0]["id"], outcome))
    return fired


def _sweep_stale(repo: Repo, session: Session, triggers, state: dict[str, Any], now: datetime) -> list[Fired]:
    """Tell the sender of each dispatch that has waited longer than the sweep's hours with
    no session running for it, once per dispatch."""
    if triggers.stale_hours is None:
        return []
    runtime = Runtime(repo)
    told = state.setdefault("stale", {})
    cutoff = now.timestamp() - 3600 * triggers.stale_hours
    here = remote.clone_name(repo.root)
    fired = []
    with EventStore(repo) as store:
        with SummaryIndex(store) as index:  # one query for every mailbox, not a read each
            undone = index.undone_dispatches()
        for agent in [a.name for a in Registry(repo).all()]:
            current = runtime.read_state(agent).get("dispatch") if runtime.at_work(agent) else None
            for line in undone.get(agent, []):
                if (line["kind"] != "dispatch" or line["status"] == "done" or line["id"] in told or line["id"] == current
                        or line.get("claim") not in (None, here) or clock.parse(line["created"]).timestamp() >= cutoff):
                    continue
                told[line["id"]] = clock.utc_now()
                try:
                    with PostOffice(session) as po:
                        po.send([f"@{line['from']}"], f"dispatch {line['id'][:12]} to @{agent} waits: {line['subject']}"[:200],
                                f"Your dispatch {line['id']} to @{agent} ({line['subject']}) has waited over "
                                f"{triggers.stale_hours} h and nothing runs it.\n\nSee: git aipass status; "
                                f"cancel it with: git aipass cancel {line['id'][:12]}\n", meta={"rule": "stale-dispatch"})
                    outcome = [{"action": f"mail @{line['from']}", "ok": True, "detail": line["id"]}]
                except AipassError as exc:
                    outcome = [{"action": f"mail @{line['from']}", "ok": False, "detail": exc.message}]
                runtime.log("fired", agent, rule="stale-dispatch", on="sweep", source=line["id"], actions=outcome)
                fired.append(Fired("stale-dispatch", "sweep", line["id"], outcome))
    return fired


def _stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _trust(store: EventStore, config):
    """TRUSTED(commit) under `trust: signed` with a roster; None (all count) otherwise."""
    if config.trust != "signed":
        return None
    roster = roster_at(store, config.base_branch)
    if roster.blob_id is None:
        return None
    verifier = Verifier(store, roster)
    return lambda commit: verifier.check(commit).ok


def _load_state(path: Path) -> dict[str, Any] | None:
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return None  # unreadable: start afresh from now rather than fire history again
    return state if isinstance(state, dict) and state.get("v") == STATE_VERSION else None


def _save(path: Path, state: dict[str, Any]) -> None:
    write_atomic(path, encode(state))


def status(repo: Repo) -> dict[str, Any]:
    """Where the sweeps stand: the rules, when each schedule last fired, their gates."""
    state = _load_state(state_dir(repo) / "state.json") or {}
    return {"schedules": state.get("schedules", {}),
            "tripped": {name: s["tripped_until"] for name, s in state.get("rules", {}).items()
                        if s.get("tripped_until", 0) > datetime.now(timezone.utc).timestamp()}}
