"""Claims: an agent (or the human) says which paths it is about to change, for a while.

One entity per claimant, `refs/aipass/claims/<name>`, its tip holding `claims.json`: the
claimant's claims (glob, exclusive or shared, reason, when it ends) and the ids of those
released. Per claimant rather than one shared ref: a claim changes only its claimant's
ref, so agents claiming at once never contend, and checking an overlap reads every ref in
one batch. Merging two histories of one ref (sync) keeps every claim and every release,
so a release in one clone holds in the other.

A claim is active until it expires or is released. An exclusive claim may not overlap
another claimant's active exclusive claim (`--force` by the human or the orchestrator
takes it over, and the previous holder is told by the command). Globs are git's
wildmatch (core/wildmatch.py), case-blind where core.ignorecase is set.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from aipass_git.claims.matcher import Held, Matcher
from aipass_git.agents.identity import agent_of_email
from aipass_git.core import clock, config as config_mod, git, ids, schemas, wildmatch
from aipass_git.core.canonical import encode
from aipass_git.core.documents import load_json
from aipass_git.core.errors import AipassError, RefusedError
from aipass_git.core.names import HUMAN
from aipass_git.core.validate import Int, List, Map, Obj, Str
from aipass_git.store import entity, locks
from aipass_git.store.events import Apply, Event, EventStore
from aipass_git.store.objects import Ident
from aipass_git.store.parsed_cache import ParsedCache
from aipass_git.store.tree_view import TreeView
from aipass_git.store.verify import event_of, history, roster_at

NAMESPACE = "refs/aipass/claims/"
FILE = "claims.json"
MODES = ("exclusive", "shared")
CLAIMANT = Str(pattern=r"[a-z][a-z0-9_-]{0,31}", expected="an agent name or human")
CLAIM = Obj(required={
    "id": schemas.ENTRY_ID, "glob": schemas.OWNED_GLOB, "mode": Str(choices=MODES), "reason": Str(min_len=0, max_len=300),
    "created": schemas.TIMESTAMP, "expires": schemas.TIMESTAMP, "by": CLAIMANT,
})
DOC = Obj(required={"v": Int(min=1, max=1), "claimant": CLAIMANT, "claims": List(CLAIM, max_items=10_000),
                    "released": List(schemas.ENTRY_ID, max_items=100_000)},
          # when each release happened: the audit judges a commit by the claims active at its time
          optional={"ended": Map(schemas.TIMESTAMP, key_pattern=schemas.ENTRY_ID.pattern)})


def ref_for(claimant: str) -> str:
    return NAMESPACE + claimant


def _read(view: TreeView) -> dict[str, Any] | None:
    data = view.read(FILE)
    return json.loads(data) if data is not None else None


def parse(data: bytes, claimant: str) -> dict[str, Any]:
    return load_json(data, f"{ref_for(claimant)}:{FILE}", DOC, "this ref was not written by aipass-git; see: git log " + ref_for(claimant))


def active_at(doc: dict[str, Any], when: str) -> list[dict[str, Any]]:
    """The claims that held at WHEN (made, not yet expired nor released): a claim released
    without a recorded time (an older aipass-git) counts as held until it expired."""
    ended = doc.get("ended", {})
    # times are whole seconds: a commit in the second of the release counts as under the claim
    return [c for c in doc["claims"] if c["created"] <= when < c["expires"] and when <= ended.get(c["id"], when)]


def active(doc: dict[str, Any], now: str) -> list[dict[str, Any]]:
    released = set(doc["released"])
    return [c for c in doc["claims"] if c["id"] not in released and c["expires"] > now]


def new_claims(globs: list[str], *, mode: str, reason: str, ttl_seconds: int, by: str) -> list[dict[str, Any]]:
    now = datetime.now(timezone.utc)
    ends = (now + timedelta(seconds=ttl_seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return [{"id": ids.new_id(), "glob": g, "mode": mode, "reason": reason, "created": clock.utc_now(),
             "expires": ends, "by": by} for g in globs]


KEPT_DAYS = 14  # ended claims stay this long (the audit judges recent commits by them), then go


def compact(doc: dict[str, Any], now: str) -> None:
    """Drop claims that expired more than KEPT_DAYS ago, with their release records: a
    claimant's document stays as small as its recent work (git history keeps the rest).
    By expiry, not release: a copy in another clone that never heard of the release
    cannot bring back a claim that still holds when the two merge."""
    horizon = (clock.parse(now) - timedelta(days=KEPT_DAYS)).strftime("%Y-%m-%dT%H:%M:%SZ")
    gone = {c["id"] for c in doc["claims"] if c["expires"] < horizon}
    if gone:
        doc["claims"] = [c for c in doc["claims"] if c["id"] not in gone]
        doc["released"] = [i for i in doc["released"] if i not in gone]
        if "ended" in doc:
            doc["ended"] = {i: t for i, t in doc["ended"].items() if i not in gone}


def claimed(claimant: str, claims: list[dict[str, Any]], author: Ident) -> Apply:
    def apply(view: TreeView) -> Event | None:
        doc = _read(view) or {"v": 1, "claimant": claimant, "claims": [], "released": []}
        compact(doc, clock.utc_now())
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
        now = clock.utc_now()
        doc.setdefault("ended", {}).update({i: now for i in new})
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
    ended = {**b.get("ended", {}), **a.get("ended", {})}
    ended.update({i: min(t, ended[i]) for i, t in b.get("ended", {}).items()})
    if ended:
        a["ended"] = ended
    ours.write(FILE, encode(a))
    return f"{len(added)} claim{'s' if len(added) != 1 else ''} from the other side"


KIND = entity.Kind("claims", NAMESPACE, re.compile(r"[a-z][a-z0-9_-]{0,31}"), merge, "list them with: git aipass claim list",
                   FILE, parse)


class ClaimBook(entity.Book):
    def __init__(self, store: EventStore) -> None:
        super().__init__(store, KIND)
        self.unproven: dict[str, str] = {}  # claimant -> why its ref is not believed (after everyone())

    def everyone(self) -> dict[str, dict[str, Any]]:
        """Claimant -> its claims document, for the claimants whose refs can be believed.

        Refs whose tip moved since they were last read are read in one batch, validated and,
        under `trust: signed`, proven (every event signed by a trusted key, each claim by its
        claimant); the rest come from the parsed cache (a commit hook asks on every commit).
        A ref that does not parse or is not proven is left out and kept in `self.unproven`
        (the audit and doctor report it): a forged claim must not block anyone's commit,
        and one bad ref must not stop every commit."""
        repo = self.store.repo
        config = config_mod.load(repo)
        roster = roster_at(self.store, config.base_branch) if config.trust == "signed" else None
        trusted = roster.blob_id if roster is not None and roster.blob_id else None
        tips = [(ref, tip, i) for ref, tip in git.list_refs(repo.root, NAMESPACE) if (i := KIND.id_of(ref)) is not None]
        cache = ParsedCache(repo, "claims")
        found = {i: hit for ref, tip, i in tips if (hit := cache.get(ref, f"{tip} {trusted}")) is not None}
        stale = [(ref, tip, i) for ref, tip, i in tips if i not in found]
        if stale:
            blobs = self.store.reader.read_many([f"{tip}:{FILE}" for _, tip, _ in stale], missing_ok=True)
            for (ref, tip, i), read in zip(stale, blobs):
                try:
                    if read is None:
                        raise RefusedError(f"{ref} holds no {FILE}", KIND.list_hint)
                    hit = {"doc": parse(read[1], i)}
                    why = _unproven(self.store, ref, i, roster, config.orchestrator) if trusted else None
                    if why:
                        hit = {"unproven": why}
                except AipassError as exc:
                    hit = {"unproven": exc.message}
                found[i] = hit
                cache.put(ref, f"{tip} {trusted}", hit)
            cache.save()
        self.unproven = {i: hit["unproven"] for i, hit in found.items() if "unproven" in hit}
        return {i: hit["doc"] for i, hit in found.items() if "doc" in hit}


def _unproven(store: EventStore, ref: str, claimant: str, roster, orchestrator: str) -> str | None:
    """Why REF's history cannot be believed, or None: every event signed by a trusted key,
    each claim by its claimant, each release by its claimant, the human or the orchestrator
    (a --force takeover)."""
    for commit, raw, verdict in history(store, ref, roster):
        if not verdict.ok:
            return f"event {commit[:10]} is {verdict.reason}"
        kind = event_of(raw)
        signer = agent_of_email(verdict.principal) or (HUMAN if verdict.principal in roster.humans else None)
        allowed = {claimant, HUMAN, orchestrator} if kind == "released" else {claimant}
        if kind in ("claimed", "released") and signer not in allowed:
            return f"event {commit[:10]} ({kind}) was signed by {verdict.principal}, not @{claimant}"
    return None


def exclusive_of_others(books: dict[str, dict[str, Any]], now: str, *, besides: str | None) -> list[Held]:
    """(holder, claim) of every active exclusive claim held by someone other than BESIDES."""
    return [(holder, c) for holder, doc in books.items() if holder != besides
            for c in active(doc, now) if c["mode"] == "exclusive"]


def guard(books: dict[str, dict[str, Any]], now: str, *, besides: str | None, ignorecase: bool = False) -> Matcher:
    """What a change by BESIDES may not touch: the others' active exclusive claims."""
    return Matcher(exclusive_of_others(books, now, besides=besides), ignorecase=ignorecase)


def conflicts(books: dict[str, dict[str, Any]], claimant: str, globs: list[str], files: list[str],
              now: str, *, ignorecase: bool = False) -> list[Held]:
    """(holder, claim) of other claimants' active exclusive claims that GLOBS overlap: the
    same glob, a tracked file both match, or a path one of them names outright that the
    other matches (a claim on files that do not exist yet still collides)."""
    theirs = exclusive_of_others(books, now, besides=claimant)
    if not theirs:
        return []
    fold = str.lower if ignorecase else str
    same = {fold(g) for g in globs}
    found = {c["id"]: (holder, c) for holder, c in theirs if fold(c["glob"]) in same}
    mine, others = Matcher([("", {"glob": g}) for g in globs], ignorecase=ignorecase), Matcher(theirs, ignorecase=ignorecase)
    named = [g.rstrip("/") for g in [*globs, *(c["glob"] for _, c in theirs)] if not any(ch in wildmatch.SPECIAL for ch in g)]
    for path in [*named, *files]:
        if mine.covering(path):
            found.update((c["id"], (holder, c)) for holder, c in others.all_covering(path))
    return list(found.values())


class ClaimRefused(RefusedError):
    """An exclusive claim overlaps another claimant's: HELD names the first one."""

    def __init__(self, held: Held) -> None:
        super().__init__(holding(held), f"claim something else, ask @{held[0]}, or wait; the human or the orchestrator may --force")
        self.held = held


def holding(held: Held) -> str:
    """"GLOB is claimed by @HOLDER until WHEN (REASON)": what stands in a claimant's way."""
    holder, c = held
    return f"{c['glob']} is claimed by @{holder} until {c['expires']}" + (f" ({c['reason']})" if c["reason"] else "")


@dataclass
class Taken:
    made: list[dict[str, Any]]
    lost: list[Held]  # other claimants' claims released by --force


def take(store: EventStore, claimant: str, globs: list[str], *, author: Ident, mode: str = "exclusive",
         reason: str = "", ttl_seconds: int = 7200, force: bool = False, may_force: bool = False) -> Taken:
    """Claim GLOBS for CLAIMANT: the overlap check and the write under one lock, so two
    claimants of one clone never both win. ClaimRefused on an overlap (unless FORCE by one
    who MAY_FORCE: the overlapped claims are then released, and returned)."""
    root = store.repo.root
    with locks.Held(store.repo.runtime_dir / "locks" / "claims.lock", "the claims").acquired(
            30.0, "another claim is being written; try again"):
        books = ClaimBook(store).everyone()
        taken = conflicts(books, claimant, globs, git.tracked_files(root), clock.utc_now(),
                          ignorecase=git.ignorecase(root)) if mode == "exclusive" else []
        if taken and not force:
            raise ClaimRefused(taken[0])
        if taken and not may_force:
            raise RefusedError(f"@{claimant} may not --force a claim", "the human or the orchestrator may")
        made = new_claims(globs, mode=mode, reason=reason, ttl_seconds=ttl_seconds, by=claimant)
        for holder in sorted({h for h, _ in taken}):
            store.append(ref_for(holder), released(holder, [c["id"] for h, c in taken if h == holder], author,
                                                   f"lost to @{claimant}:"))
        store.append(ref_for(claimant), claimed(claimant, made, author))
    return Taken(made, taken)


def guard_for(store: EventStore, who: str) -> Matcher:
    """What a change by WHO may not touch, read from every claimant's ref in one batch
    (the pre-commit and pre-push hooks and the merge queue ask; falsy when nothing is
    claimed, so they can skip listing what changed)."""
    return guard(ClaimBook(store).everyone(), clock.utc_now(), besides=who, ignorecase=git.ignorecase(store.repo.root))


def refusal(path: str, held: Held) -> str:
    """Why a change to PATH is refused, and what to do, for a hook's message."""
    holder, c = held
    return (f"{path} is claimed by @{holder} until {c['expires']} ({c['glob']}" + (f": {c['reason']}" if c["reason"] else "") + ")"
            f"\nhint: ask @{holder} to release it (git aipass claim release), or wait until it expires")


def ttl(text: str) -> int:
    """Seconds in "90m", "2h", "1d" (parts add up: "1h30m")."""
    parts = re.findall(r"(\d+)\s*([mhd])", text)
    if not parts or re.sub(r"(\d+)\s*([mhd])", "", text).strip():
        raise RefusedError(f"--ttl: {text!r} is not a duration", "e.g. --ttl 90m, 2h or 1d")
    return sum(int(n) * {"m": 60, "h": 3600, "d": 86400}[u] for n, u in parts)
