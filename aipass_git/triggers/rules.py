"""`.aipass/triggers.yaml`: rules that act on events, and the built-in sweeps.

    rules:
      - name: review every PR
        on: pr.opened                # an event kind (EVENTS) or `schedule`
        when: {agent: "@api"}        # filters, all must hold (optional)
        do:
          - dispatch: "@reviewer"
            task: "Review PR {pr.id}: {pr.title}"
      - name: nightly audit
        on: schedule
        cron: "0 3 * * *"            # or: every: 30m
        do:
          - run: [git, aipass, audit]
            timeout: 300
    sweeps:
      inbox: {unread_hours: 24, skip: ["@docs"]}   # wake agents whose mail waits unread
      stale_dispatch: {hours: 6}                  # tell senders of dispatches nobody ran

Each rule has a rate limit, a circuit breaker and an optional dedupe key (gates.py).
The file is committed and reviewed like code; the copy in the work tree of the main
worktree is the one that runs. Errors name the line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from aipass_git.core import names
from aipass_git.core.documents import load_yaml_checked, located
from aipass_git.core.errors import ValidationError
from aipass_git.core.files import read as read_doc
from aipass_git.core.repo import AIPASS_DIR, Repo
from aipass_git.core.validate import Int, List, Map, Obj, Spec, Str, Violation

FILE = f"{AIPASS_DIR}/triggers.yaml"
HINT = "see TRIGGERS in the manual: git aipass --help"

# event kind -> the fields its templates and filters may use (besides COMMON)
EVENTS: dict[str, tuple[str, ...]] = {
    "mail.delivered": ("agent", "mail.id", "mail.subject", "mail.from", "mail.kind"),
    "dispatch.finished": ("agent", "dispatch.id", "dispatch.subject", "dispatch.result", "dispatch.reason"),
    "dispatch.bounced": ("agent", "dispatch.id", "dispatch.subject", "dispatch.result", "dispatch.reason"),
    "dispatch.crashed": ("agent", "dispatch.id", "dispatch.subject", "dispatch.result", "dispatch.reason"),
    "dispatch.cancelled": ("agent", "dispatch.id", "dispatch.subject", "dispatch.result", "dispatch.reason"),
    "pr.opened": ("agent", "pr.id", "pr.title", "pr.branch"),
    "pr.merged": ("agent", "pr.id", "pr.title", "pr.branch"),
    "pr.bounced": ("agent", "pr.id", "pr.title", "pr.branch"),
    "plan.phase-done": ("agent", "plan.id", "plan.title", "phase.name"),
    "plan.phase-failed": ("agent", "plan.id", "plan.title", "phase.name"),
    "plan.closed": ("plan.id", "plan.title"),
    "audit.failed": ("agent", "branch", "audit.errors"),
    "commit": ("agent", "commit.id", "commit.subject", "commit.author", "commit.paths"),
    "error": ("agent", "error.message", "error.where", "error.fingerprint", "error.count", "error.lines", "error.log"),
    "warnings": ("agent", "warnings.count", "warnings.lines"),
    "schedule": (),
}
COMMON = ("event", "rule", "time", "clone")
FIELD = re.compile(r"\{([a-z_]+(?:\.[a-z_]+)?)\}")
DURATION = re.compile(r"(\d+)\s*(s|m|h|d)")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# a filter of `when:` -> the event fields it looks at
FILTERS: dict[str, tuple[str, ...]] = {
    "agent": ("agent",),
    "subject": ("mail.subject", "dispatch.subject", "pr.title", "plan.title", "commit.subject",
                "error.message"),  # a regular expression
    "path": ("commit.paths",),  # a glob any changed path matches
    "phase": ("phase.name",),
    "result": ("dispatch.result",),
}


class _OneAction(Spec):
    """One of: dispatch, mail, plan, run, with the keys that kind takes."""

    KINDS = {
        "dispatch": Obj(required={"dispatch": Str(max_len=40), "task": Str(max_len=200)},
                        optional={"details": Str(max_len=20_000)}),
        "mail": Obj(required={"mail": Str(max_len=40), "subject": Str(max_len=200)},
                    optional={"body": Str(max_len=20_000)}),
        "plan": Obj(required={"plan": Str(max_len=40), "title": Str(max_len=200)},
                    optional={"set": Map(Str(max_len=200))}),
        "run": Obj(required={"run": List(Str(max_len=4000), max_items=100)},
                   optional={"timeout": Int(min=1, max=86_400)}),
    }

    def check(self, value: Any, path: str) -> None:
        if not isinstance(value, dict):
            raise Violation(path, "expected an action (dispatch, mail, plan or run)")
        kinds = [k for k in self.KINDS if k in value]
        if len(kinds) != 1:
            raise Violation(path, "an action is exactly one of dispatch, mail, plan, run"
                            + (f" (got {', '.join(kinds)})" if kinds else ""))
        self.KINDS[kinds[0]].check(value, path)
        if kinds[0] == "run" and not value["run"]:
            raise Violation(f"{path}.run", "must name a program")


RULE = Obj(required={"name": Str(max_len=80, one_line=True), "on": Str(choices=tuple(EVENTS)),
                     "do": List(_OneAction(), max_items=20)},
           optional={
               "when": Obj(optional={f: Str(max_len=400) for f in FILTERS}),
               "cron": Str(max_len=100), "every": Str(max_len=20),
               "clone": Str(pattern=r"[A-Za-z0-9._-]{1,63}", expected="a clone name (git config aipass.clone)"),
               "dedupe": Str(max_len=400),
               "repeats": Int(min=1, max=1_000_000),  # on: error: fire at the Nth sighting, then 2N, 4N, ...
               "mute": List(Str(max_len=400), max_items=1000),  # on: error: messages or fingerprints never told
               "pile": Int(min=1, max=1_000_000),  # on: warnings: fire when this many piled up
               "limit": Obj(optional={"firings": Int(min=1, max=100_000), "per_seconds": Int(min=1, max=10_000_000)}),
               "breaker": Obj(optional={"trips_after": Int(min=1, max=100_000), "within_seconds": Int(min=1, max=86_400),
                                        "cooldown_seconds": Int(min=1, max=10_000_000)}),
           })
DOC = Obj(optional={
    "rules": List(RULE, max_items=1000),
    "sweeps": Obj(optional={
        "inbox": Obj(optional={"unread_hours": Int(min=1, max=10_000), "skip": List(Str(max_len=40))}),
        "stale_dispatch": Obj(optional={"hours": Int(min=1, max=10_000)}),
    }),
})

LIMIT = {"firings": 60, "per_seconds": 3600}  # a rule fires at most 60 times an hour...
BREAKER = {"trips_after": 10, "within_seconds": 60, "cooldown_seconds": 300}  # ...and stops a loop (as AIPass's)


@dataclass(frozen=True)
class Rule:
    name: str
    on: str
    do: list[dict[str, Any]]
    when: dict[str, str]
    cron: str | None
    every: int | None  # seconds
    clone: str | None
    dedupe: str | None
    limit: dict[str, int]
    breaker: dict[str, int]
    repeats: int = 1
    mute: tuple[str, ...] = ()
    pile: int = 20


@dataclass(frozen=True)
class Triggers:
    rules: list[Rule]
    inbox_hours: int | None  # None: no inbox sweep
    inbox_skip: frozenset[str]
    stale_hours: int | None

    def for_event(self, kind: str) -> list[Rule]:
        return [r for r in self.rules if r.on == kind]


NONE = Triggers([], None, frozenset(), None)


def load(repo: Repo) -> Triggers:
    """The repository's triggers (none when the file is absent)."""
    data = read_doc(repo.root, FILE)
    return NONE if data is None else parse(data.decode("utf-8", "replace"))


def parse(text: str) -> Triggers:
    doc = load_yaml_checked(text, FILE, DOC, HINT) or {}
    rules = []
    seen: set[str] = set()
    for i, raw in enumerate(doc.get("rules") or []):
        where = f"rules[{i}]"
        try:
            if raw["name"] in seen:
                raise ValidationError(FILE, f"{where}.name", f"{raw['name']!r} names two rules", "give each rule its own name")
            seen.add(raw["name"])
            rules.append(_rule(raw, where))
        except ValidationError as exc:
            raise located(exc, text) from None
    sweeps = doc.get("sweeps") or {}
    inbox = sweeps.get("inbox")
    stale = sweeps.get("stale_dispatch")
    return Triggers(rules, inbox.get("unread_hours", 24) if inbox is not None else None,
                    frozenset(names.strip_at(a) for a in (inbox or {}).get("skip", [])),
                    stale.get("hours", 6) if stale is not None else None)


def _rule(raw: dict[str, Any], where: str) -> Rule:
    on = raw["on"]
    if on == "schedule" and ("cron" in raw) == ("every" in raw):
        raise ValidationError(FILE, where, f"rule {raw['name']!r} runs on a schedule: give it cron or every, one of them",
                              'e.g. cron: "*/15 * * * *" or every: 15m')
    if on != "schedule" and ("cron" in raw or "every" in raw):
        raise ValidationError(FILE, f"{where}.on", f"rule {raw['name']!r} has a cron or every but fires on {on}",
                              "use on: schedule")
    if "cron" in raw:
        _check_cron(raw["cron"], f"{where}.cron")
    for key, kind in (("repeats", "error"), ("mute", "error"), ("pile", "warnings")):
        if key in raw and on != kind:
            raise ValidationError(FILE, f"{where}.{key}", f"{key} is for on: {kind} rules, not {on}", HINT)
    known = set(EVENTS[on]) | set(COMMON)
    for j, action in enumerate(raw["do"]):
        for key, value in action.items():
            for text in ([value] if isinstance(value, str) else value if isinstance(value, list)
                         else value.values() if isinstance(value, dict) else []):
                _check_fields(str(text), known, f"{where}.do[{j}].{key}", on)
    if "dedupe" in raw:
        _check_fields(raw["dedupe"], known, f"{where}.dedupe", on)
    when = dict(raw.get("when") or {})
    for key in when:
        if not set(FILTERS[key]) & known:
            raise ValidationError(FILE, f"{where}.when.{key}", f"{on} events have no {key} to filter on",
                                  f"fields of {on}: {', '.join(EVENTS[on]) or 'none'}")
    if "subject" in when:
        try:
            re.compile(when["subject"])
        except re.error as exc:
            raise ValidationError(FILE, f"{where}.when.subject", f"not a regular expression: {exc}", HINT) from None
    if "agent" in when:
        when["agent"] = names.strip_at(when["agent"])
    return Rule(raw["name"], on, raw["do"], when, raw.get("cron"),
                duration(raw["every"], f"{where}.every") if "every" in raw else None,
                raw.get("clone"), raw.get("dedupe"), {**LIMIT, **raw.get("limit", {})}, {**BREAKER, **raw.get("breaker", {})},
                raw.get("repeats", 1), tuple(raw.get("mute", [])), raw.get("pile", 20))


def _check_fields(text: str, known: set[str], where: str, on: str) -> None:
    for name in FIELD.findall(text):
        if name not in known:
            raise ValidationError(FILE, where, f"{{{name}}} is not a field of {on} events",
                                  f"fields: {', '.join(sorted(known))}")


def _check_cron(expr: str, where: str) -> None:
    from cronsim import CronSim, CronSimError  # deferred: only schedules need it
    from datetime import datetime, timezone

    try:
        CronSim(expr, datetime.now(timezone.utc))
    except CronSimError as exc:
        raise ValidationError(FILE, where, f"{expr!r} is not a cron expression: {exc}",
                              'five fields: minute hour day-of-month month day-of-week, e.g. "0 3 * * *"') from None


def duration(text: str, where: str = "every") -> int:
    """Seconds in "90s", "15m", "2h", "1d" (parts may add up: "1h30m")."""
    parts = DURATION.findall(text)
    if not parts or DURATION.sub("", text).strip():
        raise ValidationError(FILE, where, f"{text!r} is not a duration", 'e.g. 90s, 15m, 2h, 1d or 1h30m')
    seconds = sum(int(n) * _UNIT[u] for n, u in parts)
    if seconds < 60:
        raise ValidationError(FILE, where, f"{text!r} is under a minute", "schedules tick once a minute at most")
    return seconds


def render(template: str, fields: dict[str, str]) -> str:
    """TEMPLATE with each {field} replaced (the fields were checked when the rule loaded)."""
    return FIELD.sub(lambda m: str(fields.get(m.group(1), "")), template)
