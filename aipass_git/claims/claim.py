"""Claims: an agent (or the human) says which paths it is about to change, for a while.

One entity per claimant, `refs/aipass/claims/<name>`, its tip holding `claims.json`: the
claimant's claims (glob, exclusive or shared, reason, when it ends) and the ids of those
released. Per claimant rather than one shared ref: a claim changes only its claimant's
ref, so agents claiming at once never contend, and checking an overlap reads every ref in
one batch. Merging two histories of one ref (sync) keeps every claim and every release,
so a release in one clone holds in the other.

A claim is active until it expires or is released. An exclusive claim may not overlap
another claimant's active exclusive claim (`--force` by the human or the orchestrator
takes it over, and the previous holder is told by the command). Globs match as owned
paths do (agents/ownership.py).
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from typing import Any

from aipass_git.agents import ownership
from aipass_git.core import clock, ids, schemas
from aipass_git.core.canonical import encode
from aipass_git.core.documents import load_json
from aipass_git.core.errors import RefusedError
from aipass_git.core.validate import Int, List, Obj, Str
from aipass_git.store import entity
from aipass_git.store.events import Apply, Event, EventStore
from aipass_git.store.objects import Ident
from aipass_git.store.tree_view import TreeView

NAMESPACE = "refs/aipass/claims/"
FILE = "claims.json"
MODES = ("exclusive", "shared")
CLAIMANT = Str(pattern=r"[a-z][a-z0-9_-]{0,31}", expected="an agent name or human")
CLAIM = Obj(required={
    "id": schemas.ENTRY_ID, "glob": schemas.OWNED_GLOB, "mode": Str(choices=MODES), "reason": Str(min_len=0, max_len=300),
    "created": schemas.TIMESTAMP, "expires": schemas.TIMESTAMP, "by": CLAIMANT,
})
DOC = Obj(required={"v": Int(min=1, max=1), "claimant": CLAIMANT, "claims": List(CLAIM, max_items=10_000),
                    "released": List(schemas.ENTRY_ID, max_items=100_000)})


def ref_for(claimant: str) -> str:
    return NAMESPACE + claimant


def _read(view: TreeView) -> dict[str, Any] | None:
    data = view.read(FILE)
    return json.loads(data) if data is not None else None


def parse(data: bytes, claimant: str) -> dict[str, Any]:
    return load_json(data, f"{ref_for(claimant)}:{FILE}", DOC, "this ref was not written by aipass-git; see: git log " + ref_for(claimant))


def active(doc: dict[str, Any], now: str) -> list[dict[str, Any]]:
    released = set(doc["released"])
    return [c for c in doc["claims"] if c["id"] not in released and c["expires"] > now]


def new_claims(globs: list[str], *, mode: str, reason: str, ttl_seconds: int, by: str) -> list[dict[str, Any]]:
    now = datetime.now(timezone.utc)
    ends = (now + timedelta(seconds=ttl_seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return [{"id": ids.new_id(), "glob": g, "mode": mode, "reason": reason, "created": clock.utc_now(),
             "expires": ends, "by": by} for g in globs]


def claimed(claimant: str, claims: list[dict[str, Any]], author: Ident) -> Apply:
    def apply(view: TreeView) -> Event | None:
        doc = _read(view) or {"v": 1, "claimant": claimant, "claims": [], "released": []}
        doc["claims"] += claims
        view.write(FILE, encode(doc))
        globs = ", ".join(c["glob"] for c in claims)
        return Event("claimed", f"claim: @{claimant} claims {globs}"[:200], author, {"Aipass-Claimant": claimant})
    return apply


def released(claimant: str, claim_ids: list[str], author: Ident, why: str = "released") -> Apply:
    def apply(view: TreeView) -> Event | None:
        doc = _read(view)
        if doc is None:
            return None
        new = [i for i in claim_ids if i not in doc["released"]]
        if not new:
            return None
        doc["released"] += new
        view.write(FILE, encode(doc))
        return Event("released", f"claim: @{claimant} {why} {len(new)} claim{'s' if len(new) > 1 else ''}", author,
                     {"Aipass-Claimant": claimant})
    return apply


def release_all(store: EventStore, claimant: str, author: Ident, why: str) -> int:
    """Release every active claim of CLAIMANT (its session ended, it was retired); returns how many."""
    if store.tip(ref_for(claimant)) is None:
        return 0
    doc = ClaimBook(store).get(claimant)
    live = [c["id"] for c in active(doc, clock.utc_now())]
    if live:
        store.append(ref_for(claimant), released(claimant, live, author, why))
    return len(live)


def merge(ours: TreeView, theirs: TreeView) -> str:
    """Both sides' claims and both sides' releases (store/entity.py)."""
    a, b = _read(ours), _read(theirs)
    if b is None:
        return "nothing from the other side"
    if a is None:
        ours.write(FILE, encode(b))
        return "the claims, from the other side"
    known = {c["id"] for c in a["claims"]}
    added = [c for c in b["claims"] if c["id"] not in known]
    a["claims"] = sorted(a["claims"] + added, key=lambda c: c["id"])
    a["released"] = sorted(set(a["released"]) | set(b["released"]))
    ours.write(FILE, encode(a))
    return f"{len(added)} claim{'s' if len(added) != 1 else ''} from the other side"


KIND = entity.Kind("claims", NAMESPACE, re.compile(r"[a-z][a-z0-9_-]{0,31}"), merge, "list them with: git aipass claim list")


class ClaimBook(entity.Book):
    def __init__(self, store: EventStore) -> None:
        super().__init__(store, KIND, FILE, parse)

    def everyone(self) -> dict[str, dict[str, Any]]:
        """Claimant -> its claims document, every claimant in one batch."""
        return {d["claimant"]: d for d in self.all()}


def conflicts(books: dict[str, dict[str, Any]], claimant: str, globs: list[str], files: list[str],
              now: str) -> list[tuple[str, dict[str, Any]]]:
    """(holder, claim) of other claimants' active exclusive claims that GLOBS overlap."""
    found = []
    for holder, doc in books.items():
        if holder == claimant:
            continue
        for c in active(doc, now):
            if c["mode"] == "exclusive" and ownership.first_shared(globs, [c["glob"]], files) is not None:
                found.append((holder, c))
    return found


def holder_of(books: dict[str, dict[str, Any]], path: str, now: str, *, besides: str | None) -> tuple[str, dict[str, Any]] | None:
    """The (holder, claim) of an active exclusive claim over PATH by someone other than BESIDES."""
    for holder, doc in books.items():
        if holder == besides:
            continue
        for c in active(doc, now):
            if c["mode"] == "exclusive" and ownership.pattern([c["glob"]]).match(path):
                return holder, c
    return None


def ttl(text: str) -> int:
    """Seconds in "90m", "2h", "1d" (parts add up: "1h30m")."""
    parts = re.findall(r"(\d+)\s*([mhd])", text)
    if not parts or re.sub(r"(\d+)\s*([mhd])", "", text).strip():
        raise RefusedError(f"--ttl: {text!r} is not a duration", "e.g. --ttl 90m, 2h or 1d")
    return sum(int(n) * {"m": 60, "h": 3600, "d": 86400}[u] for n, u in parts)
