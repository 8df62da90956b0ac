"""A mailbox: the event ref `refs/aipass/mail/<owner>` and what its tip tree holds.

Layout of the tip tree, fanned out by the two last (random) characters of each id so
that one event rewrites three small trees whatever the mailbox size:

    <c1>/<c2>/<id>.json      the message as delivered, never changed afterwards
    <c1>/<c2>/index.jsonl    one summary line per message in that folder, with its status

Listing a mailbox reads the index files only, never the bodies and never history.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Callable

from aipass_git.core import git
from aipass_git.core.canonical import encode
from aipass_git.core.errors import RefusedError
from aipass_git.core.text import plural
from aipass_git.mail import message as msg
from aipass_git.store import entity
from aipass_git.store.events import Apply, Event, EventStore
from aipass_git.store.objects import Ident
from aipass_git.store.tree_view import TreeView

NAMESPACE = "refs/aipass/mail/"
INDEX = "index.jsonl"
MAILBOXES_PER_BATCH = 256  # read together: few round trips, and a bounded share of the tree cache


def ref_for(owner: str) -> str:
    return NAMESPACE + owner


def tips(root: Path) -> dict[str, str]:
    """Owner -> its mailbox's tip, of every mailbox (one `for-each-ref`)."""
    return {ref[len(NAMESPACE):]: tip for ref, tip in git.list_refs(root, NAMESPACE)}


def folder_of(message_id: str) -> str:
    return f"{message_id[-1]}/{message_id[-2]}"


def message_path(message_id: str) -> str:
    return f"{folder_of(message_id)}/{message_id}.json"


def index_path(message_id: str) -> str:
    return f"{folder_of(message_id)}/{INDEX}"


def _trailers(message: dict[str, Any]) -> dict[str, str]:
    return {
        "Aipass-Message": message["id"],
        "Aipass-From": message["from"],
        "Aipass-To": message["to"],
        "Aipass-Kind": message["kind"],
        "Aipass-Thread": message["thread"],
    }


def delivery_reads(message: dict[str, Any]) -> list[str]:
    """What `deliver` reads in the mailbox, for a bulk send to read ahead in batches."""
    return [message_path(message["id"]), index_path(message["id"])]


def deliver(message: dict[str, Any], author: Ident, extra_trailers: dict[str, str] | None = None, *,
            encoded: bytes | None = None) -> Apply:
    """The event that puts MESSAGE into its recipient's mailbox (a no-op if already there).
    ENCODED: the message as stored, when a bulk send encoded its copies at once."""

    def apply(view: TreeView) -> Event | None:
        path = message_path(message["id"])
        if view.read(path) is not None:
            return None
        view.write(path, encoded if encoded is not None else encode(message))
        shard = index_path(message["id"])
        view.write(shard, (view.read(shard) or b"") + msg.encode_summary(msg.summary(message)))
        return Event(
            "deliver",
            f"mail: {message['from']} -> {message['to']}: {message['subject']}",
            author,
            {**_trailers(message), **(extra_trailers or {})},
        )

    return apply


def _edit_line(view: TreeView, owner: str, message_id: str, change: Callable[[dict[str, Any]], bool]) -> dict[str, Any] | None:
    """Apply CHANGE to MESSAGE_ID's index line in VIEW; the line when CHANGE changed it."""
    shard = index_path(message_id)
    data = view.read(shard) or b""
    found = msg.find_summary(data, message_id)
    if found is None:
        raise RefusedError(f"no message {message_id} in @{owner}'s mailbox", f"see: git aipass inbox @{owner} --all")
    line, start, end = found
    if not change(line):
        return None
    view.write(shard, data[:start] + msg.encode_summary(line) + data[end:])
    return line


def mark(owner: str, message_id: str, status: str, author: Ident, extra_trailers: dict[str, str] | None = None) -> Apply:
    """The event that moves a message's status forward; a no-op when it is already there or past."""

    def forward(line: dict[str, Any]) -> bool:
        if msg.later_status(line["status"], status) == line["status"]:
            return False
        line["status"] = status
        return True

    def apply(view: TreeView) -> Event | None:
        line = _edit_line(view, owner, message_id, forward)
        if line is None:
            return None
        return Event(
            status,
            f"mail: {owner} {status} {message_id[:12]}: {line['subject']}",
            author,
            {"Aipass-Message": message_id, **(extra_trailers or {})},
        )

    return apply


def claim(owner: str, message_id: str, clone: str, author: Ident) -> Apply:
    """The event that says clone CLONE runs dispatch MESSAGE_ID (and so no other clone
    does); a no-op when it is claimed already, by anyone."""

    def first(line: dict[str, Any]) -> bool:
        if line.get("claim"):
            return False
        line["claim"] = clone
        return True

    def apply(view: TreeView) -> Event | None:
        line = _edit_line(view, owner, message_id, first)
        if line is None:
            return None
        return Event("claim", f"mail: {owner} claim {message_id[:12]} on {clone}: {line['subject']}", author,
                     {"Aipass-Message": message_id, "Aipass-Claim": clone})

    return apply


def merge(ours: TreeView, theirs: TreeView) -> str:
    """Merge THEIRS into OURS (see store/entity.py): every message of either side, each
    status the furthest along (new < read < done). Folders both sides hold alike are not
    even opened, so a merge costs what the two sides did differently."""
    added = advanced = 0
    top_a, top_b = ours.list(), theirs.list()
    for c1 in sorted(set(top_a) | set(top_b)):
        if top_a.get(c1) == top_b.get(c1):
            continue
        if c1 not in top_a:
            ours.link(c1, *top_b[c1])
            added += _count_messages(theirs, c1)
            continue
        if c1 not in top_b:
            continue
        mid_a, mid_b = ours.list(c1), theirs.list(c1)
        for c2 in sorted(set(mid_a) | set(mid_b)):
            folder = f"{c1}/{c2}"
            if mid_a.get(c2) == mid_b.get(c2) or c2 not in mid_b:
                continue
            if c2 not in mid_a:
                ours.link(folder, *mid_b[c2])
                added += _count_messages(theirs, folder)
                continue
            a, b = ours.list(folder), theirs.list(folder)
            for name, entry in b.items():
                if name.endswith(".json") and (name not in a or entry[1] < a[name][1]):
                    # a message is never changed after delivery: the same id twice with two
                    # contents is a forgery, and either side keeps the same one of them
                    added += name not in a
                    ours.link(f"{folder}/{name}", *entry)
            index, moved = msg.merge_index(ours.read(f"{folder}/{INDEX}") or b"", theirs.read(f"{folder}/{INDEX}") or b"")
            advanced += moved
            ours.write(f"{folder}/{INDEX}", index)
    return f"{plural(added, 'message')} and {plural(advanced, 'status', 'statuses')} from the other side"


KIND = entity.Kind("mailbox", NAMESPACE, re.compile(r"[a-z][a-z0-9_-]{0,31}"), merge, "see: git aipass agent list")


def _count_messages(view: TreeView, folder: str) -> int:
    data = b"".join(view.read(f"{f}/{INDEX}") or b"" for f in ([folder] if "/" in folder else
                                                               [f"{folder}/{c2}" for c2 in view.list(folder)]))
    return data.count(b"\n")


Folder = dict[str, tuple[str, str]]  # a message folder's entries: name -> (mode, object id)


def folder_changes(store: EventStore, spans: dict[str, tuple[str | None, str]]) -> dict[str, list[tuple[Folder | None, Folder]]]:
    """Owner -> (before, now) of each message folder that differs between two commits of
    its mailbox, SPANS naming them (before None: every folder is new). Each folder holds
    its messages' files and their index lines, so what changed is known folder by folder."""
    def read(pairs: list[tuple[str | None, str]]) -> list[list[tuple[Folder | None, Folder]]]:
        old_trees = dict(zip([old for old, _ in pairs if old], store.trees_of([old for old, _ in pairs if old])))
        new_trees = store.trees_of([new for _, new in pairs])
        return store.changed_folders_many([(old_trees.get(old) if old else None, new)
                                           for (old, _), new in zip(pairs, new_trees)])

    return _batched(spans, MAILBOXES_PER_BATCH, read)


def index_lines(store: EventStore, folders: list[Folder | None]) -> list[list[dict[str, Any]]]:
    """The summary lines of each folder's index (none for None or a folder without one),
    every index read in one batch."""
    oids = [folder[INDEX][1] for folder in folders if folder is not None and INDEX in folder]
    blobs = iter(store.blobs(oids))
    return [msg.decode_summary_blobs([next(blobs)]) if folder is not None and INDEX in folder else []
            for folder in folders]


def file_ids(folder: Folder | None) -> set[str]:
    """Ids of the message files in a folder."""
    return {name[:-5] for name in folder or {} if name.endswith(".json")}


def _batched(items: dict[str, Any], size: int, read: Callable[[list[Any]], list[Any]]) -> dict[str, Any]:
    """Owner -> READ's answer for its item, read SIZE owners at a time."""
    out: dict[str, Any] = {}
    owners = sorted(items)
    for start in range(0, len(owners), size):
        chunk = owners[start:start + size]
        out.update(zip(chunk, read([items[owner] for owner in chunk])))
    return out


class MailboxReader:
    """Reads one mailbox's current state from its tip tree."""

    def __init__(self, store: EventStore, owner: str) -> None:
        self.store = store
        self.owner = owner
        self.ref = ref_for(owner)

    def summaries(self) -> list[dict[str, Any]]:
        """Every message's summary line with its status (no bodies)."""
        tip = self.store.tip(self.ref)
        if tip is None:
            return []
        return msg.decode_summary_blobs(self.store.collect(self.store.tree_of(tip), name=INDEX))

    def summary(self, message_id: str) -> dict[str, Any] | None:
        found = msg.find_summary(self.store.view(self.ref).read(index_path(message_id)) or b"", message_id)
        return found[0] if found else None

    def message(self, message_id: str) -> dict[str, Any] | None:
        data = self.store.view(self.ref).read(message_path(message_id))
        return json.loads(data) if data is not None else None

    def messages(self, message_ids: list[str]) -> list[dict[str, Any]]:
        """Full messages for many ids, read in one batch."""
        tip = self.store.tip(self.ref)
        if tip is None or not message_ids:
            return []
        view = self.store.view(self.ref)
        oids = []
        for mid in message_ids:
            entry = view.list(folder_of(mid)).get(f"{mid}.json")
            if entry is not None:
                oids.append(entry[1])
        return [json.loads(data) for data in self.store.blobs(oids)]
