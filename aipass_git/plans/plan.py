"""A plan: the event ref `refs/aipass/plans/<id>`, its tip tree holding `plan.json` (the
state) and `plan.md` (the same, rendered for people and for `git show`).

Phases form a graph by `depends_on` (cycles refused when the plan is made). A phase is
waiting, running, done or failed; a phase is ready when it waits and everything it
depends on is done. Events: created, note, phase-started, phase-dispatched, phase-done,
phase-failed, phase-retried, closed, cancelled, and remembered (the closed plan's summary is in the
orchestrator's memory archive).
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from aipass_git.core import clock, ids, schemas
from aipass_git.core.canonical import encode
from aipass_git.core.documents import load_json
from aipass_git.core.errors import RefusedError
from aipass_git.core.validate import Bool, Int, List, Nullable, Obj, Str, validate
from aipass_git.store import entity
from aipass_git.store.events import Apply, Event, EventStore
from aipass_git.store.objects import Ident
from aipass_git.store.tree_view import TreeView

NAMESPACE = "refs/aipass/plans/"
FILE = "plan.json"
RENDERED = "plan.md"
STATES = ("open", "blocked", "closed", "cancelled")
PHASE_STATES = ("waiting", "running", "failed", "done")  # in the order a merge takes the furthest
DONE_RULES = ("reply", "pr-merged", "audit-clean", "approve")
_PLAN_RANK = {"open": 0, "blocked": 1, "closed": 2, "cancelled": 3}

PHASE_NAME = Str(pattern=r"[a-z][a-z0-9-]{0,39}", expected="a phase name (a-z, 0-9, '-')")
OWNER = Str(pattern=r"[a-z][a-z0-9_-]{0,31}", expected="an agent name or human")
PHASE = Obj(required={
    "name": PHASE_NAME, "owner": OWNER, "task": Str(max_len=4000), "depends_on": List(PHASE_NAME, max_items=100, unique=True),
    "done_when": Str(choices=DONE_RULES), "timeout_minutes": Nullable(Int(min=1, max=100_000)),
    "state": Str(choices=PHASE_STATES), "dispatch": Nullable(schemas.ENTRY_ID),
    "started": Nullable(schemas.TIMESTAMP), "finished": Nullable(schemas.TIMESTAMP),
}, optional={"attempt": Int(min=1, max=1000),  # absent: the first; `plan retry` counts up
             "claims": List(schemas.OWNED_GLOB, max_items=100, unique=True)})  # paths its dispatch claims for the owner
NOTE = Obj(required={"at": schemas.TIMESTAMP, "by": OWNER, "text": Str(max_len=4000)})
PLAN = Obj(required={
    "v": Int(min=1, max=1), "id": schemas.ENTRY_ID, "title": Str(max_len=200, one_line=True),
    "template": Str(pattern=r"[a-z][a-z0-9-]{0,39}", expected="a template name"), "owner": OWNER,
    "state": Str(choices=STATES), "living": Bool(), "created": schemas.TIMESTAMP, "created_by": OWNER,
    "phases": List(PHASE, max_items=500), "notes": List(NOTE, max_items=10_000),
}, optional={
    "ended": schemas.TIMESTAMP,  # when it closed or was cancelled
    "remembered": Str(pattern=r"[0-9a-f]{40,64}", expected="a commit id"),  # the memory commit of its summary
})


def ref_for(plan_id: str) -> str:
    return NAMESPACE + plan_id


def new(*, title: str, template: str, owner: str, created_by: str, living: bool,
        phases: list[dict[str, Any]]) -> dict[str, Any]:
    """A plan document, checked: phase names unique, dependencies known, no cycle."""
    doc = {
        "v": 1, "id": ids.new_id(), "title": title, "template": template, "owner": owner, "state": "open",
        "living": living, "created": clock.utc_now(), "created_by": created_by,
        "phases": [{"depends_on": [], "done_when": "reply", "timeout_minutes": None, **p, "state": "waiting",
                    "dispatch": None, "started": None, "finished": None} for p in phases],
        "notes": [],
    }
    validate(doc, PLAN, f"plan template {template!r}", "fix the template (git aipass plan templates lists them)")
    check_graph(doc["phases"])
    return doc


def check_graph(phases: list[dict[str, Any]]) -> None:
    names = [p["name"] for p in phases]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise RefusedError(f"phase {twice[0]!r} is named twice", "give each phase its own name")
    for p in phases:
        unknown = [d for d in p["depends_on"] if d not in names]
        if unknown:
            raise RefusedError(f"phase {p['name']!r} depends on {unknown[0]!r}, which is not a phase of the plan",
                               f"phases: {', '.join(names)}")
    cycle = _cycle({p["name"]: p["depends_on"] for p in phases})
    if cycle:
        raise RefusedError(f"the phases depend on each other in a circle: {' -> '.join(cycle)}",
                           "a plan's phases must form a graph without cycles; drop one of these dependencies")


def _cycle(graph: dict[str, list[str]]) -> list[str] | None:
    """A cycle of GRAPH as a path that ends where it starts, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for dep in graph[node]:
            if state.get(dep) == 1:
                return path[path.index(dep):] + [dep]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def overdue(phase: dict[str, Any], now: datetime) -> bool:
    """A running phase that has run longer than its timeout."""
    return bool(phase["state"] == "running" and phase["timeout_minutes"] and phase["started"]
                and (now - clock.parse(phase["started"])).total_seconds() > 60 * phase["timeout_minutes"])


def stuck(doc: dict[str, Any], retired: set[str], now: datetime) -> list[str]:
    """Why an open or blocked plan cannot go on by itself, one line each: blocked, a phase
    past its timeout, a phase whose owner was retired, a graph that is not one (a plan
    written by hand or by an old version; `plan new` refuses those)."""
    if doc["state"] not in ("open", "blocked"):
        return []
    found = [f"{doc['id'][:12]} is blocked"] if doc["state"] == "blocked" else []
    try:
        check_graph(doc["phases"])
    except RefusedError as exc:
        found.append(f"{doc['id'][:12]}: {exc.message}")
    for p in doc["phases"]:
        if p["state"] in ("waiting", "running") and p["owner"] in retired:
            how = "waits for" if p["state"] == "waiting" else "was given to"
            found.append(f"{doc['id'][:12]}/{p['name']} {how} retired @{p['owner']}")
        if overdue(p, now):
            found.append(f"{doc['id'][:12]}/{p['name']} runs past its {p['timeout_minutes']} min")
    return found


def ready(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The phases of an open plan that wait and whose dependencies are all done."""
    if doc["state"] != "open":
        return []
    done = {p["name"] for p in doc["phases"] if p["state"] == "done"}
    return [p for p in doc["phases"] if p["state"] == "waiting" and set(p["depends_on"]) <= done]


def render(doc: dict[str, Any]) -> str:
    """plan.md: a Markdown view of the plan, with a checkbox per phase."""
    mark = {"waiting": " ", "running": "~", "failed": "!", "done": "x"}
    out = [f"# {doc['title']}", "",
           f"Plan {doc['id']} ({doc['template']}), {doc['state']}{' (living)' if doc['living'] else ''}; "
           f"owner @{doc['owner']}; created {doc['created']} by @{doc['created_by']}.", "", "## Phases", ""]
    for p in doc["phases"]:
        after = f" (after {', '.join(p['depends_on'])})" if p["depends_on"] else ""
        out.append(f"- [{mark[p['state']]}] **{p['name']}** @{p['owner']}: {p['state']}{after}; done when {p['done_when']}")
        out.extend(f"  {line}" for line in p["task"].splitlines())
    if doc["notes"]:
        out += ["", "## Notes", ""] + [f"- {n['at']} @{n['by']}: {n['text']}" for n in doc["notes"]]
    return "\n".join(out) + "\n"


def _read(view: TreeView) -> dict[str, Any] | None:
    data = view.read(FILE)
    return json.loads(data) if data is not None else None


def _write(view: TreeView, doc: dict[str, Any]) -> None:
    view.write(FILE, encode(doc))
    view.write(RENDERED, render(doc).encode("utf-8"))


def created(doc: dict[str, Any], author: Ident) -> Apply:
    def apply(view: TreeView) -> Event | None:
        if _read(view) is not None:
            return None
        _write(view, doc)
        return Event("created", f"plan: {doc['id'][:12]} created: {doc['title']}", author,
                     {"Aipass-Plan": doc["id"], "Aipass-Template": doc["template"]})
    return apply


def note(plan_id: str, by: str, text: str, author: Ident) -> Apply:
    def apply(view: TreeView) -> Event | None:
        doc = _read(view)
        if doc is None:
            raise RefusedError(f"{ref_for(plan_id)} holds no {FILE}", "this ref was not written by aipass-git")
        doc["notes"].append({"at": clock.utc_now(), "by": by, "text": text})
        _write(view, doc)
        return Event("note", f"plan: {plan_id[:12]} note by @{by}", author, {"Aipass-Plan": plan_id})
    return apply


def _change(plan_id: str, kind: str, summary: str, author: Ident, change, phase: str | None = None) -> Apply:
    """An event that edits plan.json by CHANGE(doc), which returns False when there is
    nothing to do (another process got there first: the event is not written). A phase's
    events name it in `Aipass-Phase` (what triggers match on)."""
    def apply(view: TreeView) -> Event | None:
        doc = _read(view)
        if doc is None:
            raise RefusedError(f"{ref_for(plan_id)} holds no {FILE}", "this ref was not written by aipass-git")
        if not change(doc):
            return None
        _write(view, doc)
        return Event(kind, f"plan: {plan_id[:12]} {summary}", author,
                     {"Aipass-Plan": plan_id, **({"Aipass-Phase": phase} if phase else {})})
    return apply


def phase_of(doc: dict[str, Any], name: str) -> dict[str, Any]:
    for p in doc["phases"]:
        if p["name"] == name:
            return p
    raise RefusedError(f"plan {doc['id'][:12]} has no phase {name!r}", f"phases: {', '.join(p['name'] for p in doc['phases'])}")


def started(plan_id: str, name: str, author: Ident) -> Apply:
    """The phase moves from waiting to running; a no-op when it is not waiting any more, so
    of two processes starting it at once one event is written (a compare-and-swap)."""
    def change(doc: dict[str, Any]) -> bool:
        phase = phase_of(doc, name)
        if doc["state"] != "open" or phase["state"] != "waiting" or phase not in ready(doc):
            return False
        phase.update(state="running", started=clock.utc_now())
        return True
    return _change(plan_id, "phase-started", f"{name} started", author, change, name)


def dispatched(plan_id: str, name: str, dispatch_id: str, author: Ident) -> Apply:
    def change(doc: dict[str, Any]) -> bool:
        phase = phase_of(doc, name)
        if phase["dispatch"] == dispatch_id:
            return False
        phase["dispatch"] = dispatch_id
        return True
    return _change(plan_id, "phase-dispatched", f"{name} dispatched as {dispatch_id[:12]}", author, change, name)


def finished(plan_id: str, name: str, state: str, author: Ident, by: str, reason: str = "") -> Apply:
    """The phase ends done or failed; a failed phase blocks the plan, and a plan whose
    phases are all done closes (unless it is living)."""
    def change(doc: dict[str, Any]) -> bool:
        phase = phase_of(doc, name)
        if phase["state"] in ("done", "failed") or doc["state"] in ("closed", "cancelled"):
            return False
        phase.update(state=state, finished=clock.utc_now())
        if state == "failed":
            doc["state"] = "blocked"
            doc["notes"].append({"at": clock.utc_now(), "by": by, "text": f"phase {name} failed: {reason}"[:4000]})
        elif all(p["state"] == "done" for p in doc["phases"]) and not doc["living"]:
            doc.update(state="closed", ended=clock.utc_now())
        return True
    return _change(plan_id, f"phase-{state}", f"{name} {state}" + (f": {reason}" if reason else ""), author, change, name)


def retried(plan_id: str, name: str, author: Ident, by: str) -> Apply:
    """A failed phase waits again, as its next attempt; the plan is open again when no
    other phase failed. A no-op when the phase is not failed (someone retried it first)."""
    def change(doc: dict[str, Any]) -> bool:
        phase = phase_of(doc, name)
        if phase["state"] != "failed" or doc["state"] in ("closed", "cancelled"):
            return False
        phase.update(state="waiting", attempt=phase.get("attempt", 1) + 1, dispatch=None, started=None, finished=None)
        doc["state"] = _open_or_blocked(doc)
        doc["notes"].append({"at": clock.utc_now(), "by": by, "text": f"phase {name} retried (attempt {phase['attempt']})"})
        return True
    return _change(plan_id, "phase-retried", f"{name} retried", author, change, name)


def _open_or_blocked(doc: dict[str, Any]) -> str:
    return "blocked" if any(p["state"] == "failed" for p in doc["phases"]) else "open"


def ended(plan_id: str, state: str, author: Ident) -> Apply:
    def change(doc: dict[str, Any]) -> bool:
        if doc["state"] in ("closed", "cancelled"):
            return False
        doc.update(state=state, ended=clock.utc_now())
        return True
    return _change(plan_id, state, state, author, change)


def remembered(plan_id: str, commit: str, author: Ident) -> Apply:
    """The closed plan's summary is in the orchestrator's memory archive, at COMMIT."""
    def change(doc: dict[str, Any]) -> bool:
        if doc.get("remembered"):
            return False
        doc["remembered"] = commit
        return True
    return _change(plan_id, "remembered", f"remembered in {commit[:10]}", author, change)


def merge(ours: TreeView, theirs: TreeView) -> str:
    """Merge THEIRS into OURS (store/entity.py): each phase the furthest along (its latest
    attempt first), the plan closed or cancelled if either side says so and otherwise
    blocked exactly when a merged phase failed, the notes of both."""
    a, b = _read(ours), _read(theirs)
    if b is None:
        return "nothing from the other side"
    if a is None:
        _write(ours, b)
        return "the plan, from the other side"
    phases_b = {p["name"]: p for p in b["phases"]}
    moved = 0
    for i, p in enumerate(a["phases"]):
        other = phases_b.get(p["name"])
        if other is not None and _phase_key(other) > _phase_key(p):
            a["phases"][i] = other
            moved += 1
    if b["state"] in ("closed", "cancelled") and _PLAN_RANK[b["state"]] > _PLAN_RANK[a["state"]]:
        a["state"] = b["state"]
        if "ended" in b:
            a["ended"] = b["ended"]
    elif a["state"] in ("open", "blocked"):
        a["state"] = _open_or_blocked(a)  # follows the merged phases: a retry on either side counts
    if "remembered" in b and "remembered" not in a:
        a["remembered"] = b["remembered"]
    notes = {json.dumps(n, sort_keys=True): n for n in a["notes"] + b["notes"]}
    a["notes"] = [notes[k] for k in sorted(notes, key=lambda k: (notes[k]["at"], k))]
    _write(ours, a)
    return f"{moved} phase{'s' if moved != 1 else ''} from the other side"


def _phase_key(p: dict[str, Any]) -> tuple:
    # a later attempt wins over any state of an earlier one (a retry moves failed back to waiting)
    return p.get("attempt", 1), PHASE_STATES.index(p["state"]), str(p.get("finished")), str(p.get("started")), encode(p)


def parse(data: bytes, plan_id: str) -> dict[str, Any]:
    """A plan.json, validated (anyone who can push a ref can write one)."""
    return load_json(data, f"{ref_for(plan_id)}:{FILE}", PLAN,
                     "this plan was not written by aipass-git; see: git log " + ref_for(plan_id))


KIND = entity.Kind("plan", NAMESPACE, re.compile(ids.ID_PATTERN.pattern.removesuffix("\\Z")), merge,
                   "list them with: git aipass plan list --all", FILE, parse)


class PlanBook(entity.Book):
    """Reads plans."""

    def __init__(self, store: EventStore) -> None:
        super().__init__(store, KIND)
