"""What stands between an event and a rule's actions: the rule's own clone, its filters,
a dedupe key, a rate limit, and a circuit breaker.

The breaker is what stops a loop of agents waking each other: a rule that fires
`trips_after` times within `within_seconds` is tripped and fires nothing for
`cooldown_seconds` (AIPass's defaults: 10 in 60 s, 5 minutes); the trip is logged and
the human told, once per trip. State lives in the engine's state file (per rule: recent
firings, the breaker, dedupe keys), so it holds across processes and restarts.
"""

from __future__ import annotations

import fnmatch
import re
from typing import Any

from aipass_git.triggers.rules import FILTERS, Rule, render

DEDUPE_SECONDS = 7 * 86400  # a dedupe key is remembered for a week


def matches(rule: Rule, fields: dict[str, str], here: str) -> bool:
    """Whether an event with FIELDS passes RULE's filters (and the rule runs in this clone)."""
    if rule.clone is not None and rule.clone != here:
        return False
    for key, want in rule.when.items():
        values = [fields[f] for f in FILTERS[key] if f in fields]
        if key == "subject":
            ok = any(re.search(want, v) for v in values)
        elif key == "path":
            ok = any(fnmatch.fnmatch(p, want) or fnmatch.fnmatch(p, want.rstrip("*").rstrip("/") + "/*")
                     for v in values for p in v.split())
        else:
            ok = want in values
        if not ok:
            return False
    return True


class Gates:
    """The gates of every rule, over STATE (the engine's dict, saved by the engine)."""

    def __init__(self, state: dict[str, Any]) -> None:
        self.state = state.setdefault("rules", {})

    def _of(self, rule: Rule) -> dict[str, Any]:
        return self.state.setdefault(rule.name, {"firings": [], "tripped_until": 0, "dedupe": {}})

    def admit(self, rule: Rule, fields: dict[str, str], now: float) -> tuple[bool, str]:
        """(fire?, why not); a firing that is let through is counted."""
        s = self._of(rule)
        key = render(rule.dedupe, fields) if rule.dedupe else None
        s["dedupe"] = {k: t for k, t in s["dedupe"].items() if now - t < DEDUPE_SECONDS}
        if key is not None and key in s["dedupe"]:
            return False, f"already fired for {key!r}"
        if now < s["tripped_until"]:
            return False, f"breaker open for {int(s['tripped_until'] - now)} s more"
        window = max(rule.limit["per_seconds"], rule.breaker["within_seconds"])
        s["firings"] = [t for t in s["firings"] if now - t < window]
        recent = [t for t in s["firings"] if now - t < rule.breaker["within_seconds"]]
        if len(recent) >= rule.breaker["trips_after"]:
            s["tripped_until"] = now + rule.breaker["cooldown_seconds"]
            return False, "tripped"
        if len([t for t in s["firings"] if now - t < rule.limit["per_seconds"]]) >= rule.limit["firings"]:
            return False, f"rate limit: {rule.limit['firings']} firings in {rule.limit['per_seconds']} s"
        s["firings"].append(now)
        if key is not None:
            s["dedupe"][key] = now
        return True, ""
