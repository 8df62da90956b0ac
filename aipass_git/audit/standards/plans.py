"""Plans: every plan ref readable, none stuck (blocked, a phase past its timeout or on a
retired agent, phases that do not form a graph: ARCHITECTURE.md, section 10)."""

from __future__ import annotations

from aipass_git.audit.engine import Problem, standard
from aipass_git.core import clock


def _plans(ctx):
    """(ref, plan or None, why unreadable) for every plan ref."""
    from aipass_git.plans import plan as plan_mod  # deferred: the commit hook loads every standard; only the full audit reads plans
    from aipass_git.store.events import EventStore

    with EventStore(ctx.repo) as store:
        docs, unreadable = plan_mod.PlanBook(store).readable()
    for doc in docs:
        yield plan_mod.ref_for(doc["id"]), doc, ""
    for plan_id, why in unreadable.items():
        yield plan_mod.ref_for(plan_id), None, why


@standard("plans.readable", "every plan ref holds a plan.json that aipass-git can read")
def readable(ctx):
    for ref, doc, why in _plans(ctx):
        if doc is None:
            yield Problem(ref, why, "the ref was written outside aipass-git; see: git log " + ref)


@standard("plans.moving", "no open plan is stuck: blocked, a phase past its timeout or owned by a "
                          "retired agent, or phases depending on each other in a circle", severity="warning")
def moving(ctx):
    from aipass_git.plans import plan as plan_mod  # deferred: see _plans

    retired = {a.name for a in ctx.agents if not a.active}
    now = clock.parse(clock.utc_now())
    for ref, doc, _ in _plans(ctx):
        if doc is not None:
            for line in plan_mod.stuck(doc, retired, now):
                yield Problem(ref, line, f"see: git aipass plan show {doc['id'][:12]}")


STANDARDS = [readable, moving]
