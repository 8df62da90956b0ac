"""When a scheduled rule is due: its cron expression (cronsim) or its interval, from the
last time it fired. A rule first seen is not due until its next tick; ticks missed while
nothing looked (the daemon down, no hook fired) make it due once, not once per tick."""

from __future__ import annotations

from datetime import datetime, timedelta

from aipass_git.triggers.rules import Rule


def next_tick(rule: Rule, after: datetime) -> datetime:
    """The first time after AFTER that RULE should fire."""
    if rule.cron is not None:
        from cronsim import CronSim  # deferred: only scheduled rules pay for it

        return next(CronSim(rule.cron, after))
    return after + timedelta(seconds=rule.every or 0)


def due(rule: Rule, last: datetime, now: datetime) -> bool:
    return next_tick(rule, last) <= now
