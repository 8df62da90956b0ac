"""A PR record: the event ref `refs/aipass/prs/<id>`, its tip tree holding `pr.json`.

Events: opened, updated, audited, merged, bounced, told (the author was sent the notice
the merged or bounced event holds), closed. `pr.json` is the state after the last one,
so reading a PR never walks history; `git log refs/aipass/prs/<id>` reads as its story.
"""

from __future__ import annotations

import json
from typing import Any

from aipass_git.core import clock, ids
from aipass_git.core.canonical import encode
from aipass_git.core.errors import RefusedError, UnknownMessageError
from aipass_git.store.events import Apply, Event, EventStore
from aipass_git.store.objects import Ident
from aipass_git.store.tree_view import TreeView
from aipass_git.core import git

NAMESPACE = "refs/aipass/prs/"
FILE = "pr.json"
STATES = ("open", "merged", "bounced", "closed")


def ref_for(pr_id: str) -> str:
    return NAMESPACE + pr_id


def new(*, agent: str, branch: str, base: str, head: str, title: str, body: str) -> dict[str, Any]:
    now = clock.utc_now()
    return {
        "v": 1, "id": ids.new_id(), "agent": agent, "branch": branch, "base": base, "head": head,
        "title": title, "body": body, "state": "open", "created": now, "updated": now,
        "merge_commit": None, "audit": None, "reason": None, "conflicts": [], "findings": [],
        "told": None, "notice": None,
    }


def _read(view: TreeView) -> dict[str, Any] | None:
    data = view.read(FILE)
    return json.loads(data) if data is not None else None


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


class PRBook:
    """Reads PR records."""
    def __init__(self, store: EventStore) -> None:
        self.store = store

    def ids(self) -> list[str]:

        return sorted(ref[len(NAMESPACE):] for ref, _ in git.list_refs(self.store.repo.root, NAMESPACE))

    def all(self) -> list[dict[str, Any]]:
        ids_ = self.ids()
        if not ids_:
            return []
        blobs = self.store.reader.read_many([f"{ref_for(i)}:{FILE}" for i in ids_])
        return [json.loads(data) for _, data in blobs]

    def get(self, raw_id: str) -> dict[str, Any]:
        prefix = raw_id.strip().lower()
        matches = [i for i in self.ids() if i.startswith(prefix)] if prefix else []
        if not matches:
            raise UnknownMessageError(f"no PR {raw_id!r}", "list them with: git aipass pr list --state all")
        if len(matches) > 1:
            raise RefusedError(f"PR id {raw_id!r} is ambiguous ({', '.join(m[:14] for m in matches[:4])})", "give more characters")
        data = self.store.view(ref_for(matches[0])).read(FILE)
        return json.loads(data)
