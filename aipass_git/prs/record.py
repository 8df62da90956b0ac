"""A PR record: the event ref `refs/aipass/prs/<id>`, its tip tree holding `pr.json`.

Events: opened, updated, audited, merged, bounced, told (the author was sent the notice
the merged or bounced event holds), closed. `pr.json` is the state after the last one,
so reading a PR never walks history; `git log refs/aipass/prs/<id>` reads as its story.
"""

from __future__ import annotations

import json
import re
from typing import Any

from aipass_git.core import clock, ids, schemas
from aipass_git.core.canonical import encode
from aipass_git.core.documents import load_json
from aipass_git.core.errors import RefusedError
from aipass_git.core.validate import Bool, Int, List, Nullable, Obj, Str
from aipass_git.store import entity
from aipass_git.store.events import Apply, Event, EventStore
from aipass_git.store.objects import Ident
from aipass_git.store.tree_view import TreeView

NAMESPACE = "refs/aipass/prs/"
FILE = "pr.json"
STATES = ("open", "merged", "bounced", "closed")
# which of two diverged records wins a merge: a terminal state over a live one, then the
# later update (the history of both stays in the merge commit's parents)
_RANK = {"open": 0, "bounced": 0, "closed": 1, "merged": 2}

SHA = Str(pattern=r"[0-9a-f]{40}|[0-9a-f]{64}", expected="a commit id")
PR = Obj(
    required={
        "v": Int(min=1, max=1), "id": schemas.ENTRY_ID, "agent": Str(pattern=r"[a-z][a-z0-9_-]{0,31}", expected="an agent name"),
        "branch": Str(max_len=255, one_line=True), "base": Str(max_len=255, one_line=True), "head": SHA,
        "title": Str(max_len=1000, one_line=True), "body": Str(min_len=0, max_len=1024 * 1024),
        "state": Str(choices=STATES), "created": schemas.TIMESTAMP, "updated": schemas.TIMESTAMP,
        "merge_commit": Nullable(SHA), "audit": Nullable(Obj(allow_extra=True)), "reason": Nullable(Str(min_len=0, max_len=10_000)),
        "conflicts": List(Str(max_len=4096)), "findings": List(Str(max_len=10_000)),
        "told": Nullable(Bool()), "notice": Nullable(Obj(allow_extra=True)),
    },
    # the dispatch the PR was opened in (from the agent's AIPASS_DISPATCH): a plan phase
    # done when its PR merges finds it by this
    optional={"dispatch": Nullable(schemas.ENTRY_ID)},
)


def ref_for(pr_id: str) -> str:
    return NAMESPACE + pr_id


def new(*, agent: str, branch: str, base: str, head: str, title: str, body: str,
        dispatch: str | None = None, pr_id: str | None = None) -> dict[str, Any]:
    now = clock.utc_now()
    return {"dispatch": dispatch,
        "v": 1, "id": pr_id or ids.new_id(), "agent": agent, "branch": branch, "base": base, "head": head,
        "title": title, "body": body, "state": "open", "created": now, "updated": now,
        "merge_commit": None, "audit": None, "reason": None, "conflicts": [], "findings": [],
        "told": None, "notice": None,
    }


def _read(view: TreeView) -> dict[str, Any] | None:
    data = view.read(FILE)
    return json.loads(data) if data is not None else None


def merge(ours: TreeView, theirs: TreeView) -> str:
    """Merge THEIRS into OURS (see store/entity.py): the record further along wins."""
    a, b = _read(ours), _read(theirs)
    if b is None:
        return "nothing from the other side"
    if a is None or _merge_key(b) > _merge_key(a):
        ours.write(FILE, encode(b))
        return f"{b['state']}, from the other side"
    return f"{a['state']}, kept"


def _merge_key(pr: dict[str, Any]) -> tuple:
    return _RANK.get(pr.get("state"), 0), str(pr.get("updated")), encode(pr)


def parse(data: bytes, pr_id: str) -> dict[str, Any]:
    """A pr.json, validated (anyone who can push a ref can write one)."""
    return load_json(data, f"{ref_for(pr_id)}:{FILE}", PR,
                     "this record was not written by aipass-git; see: git log " + ref_for(pr_id))


KIND = entity.Kind("PR", NAMESPACE, re.compile(ids.ID_PATTERN.pattern.removesuffix("\\Z")), merge,
                   "list them with: git aipass pr list --state all", FILE, parse)


def event(kind: str, author: Ident, change: dict[str, Any], *, expect: tuple[str, ...] | None = None,
          create: dict[str, Any] | None = None, summary: str = "") -> Apply:
    """An event that changes pr.json by CHANGE (or creates it from CREATE)."""
    def apply(view: TreeView) -> Event | None:
        pr = _read(view)
        if pr is None:
            if create is None:
                raise RefusedError("the PR record is empty", "this ref was not written by aipass")
            pr = dict(create)
        elif expect is not None and pr["state"] not in expect:
            raise RefusedError(f"PR {pr['id'][:12]} is {pr['state']}", "see: git aipass pr show ID")
        pr.update(change)
        pr["updated"] = clock.utc_now()
        view.write(FILE, encode(pr))
        return Event(
            kind,
            f"pr: {pr['agent']} {kind} {pr['id'][:12]}: {pr['title']}" + (f" ({summary})" if summary else ""),
            author,
            {"Aipass-PR": pr["id"], "Aipass-Branch": pr["branch"], "Aipass-Head": pr["head"]},
        )

    return apply


class PRBook(entity.Book):
    """Reads PR records."""

    def __init__(self, store: EventStore) -> None:
        super().__init__(store, KIND)
