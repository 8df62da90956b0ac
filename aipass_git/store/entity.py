"""Kinds of entity on refs, and what the store does with any of them (after git-bug's
entity/dag): list their ids, resolve a prefix, and merge two histories of one entity.

A kind is a definition: the ref namespace, the rule its ids follow, its state's schema
(the one document a tip holds and the function that reads it validated; a mailbox's state is
a tree of many files, read by mail/mailbox.py) and a merge function. Everything else is
generic. Two clones that both wrote to one entity hold two tips; the
merge of those is a commit with both as parents (so `git log` of the ref shows both
histories) whose tree is the kind's merge of the two states. A kind's merge must be
symmetric and lose nothing (a mailbox keeps the union of messages, each status the
furthest along), so merging in any order, or twice, gives the same state.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from aipass_git.core import git
from aipass_git.core.errors import AipassError, RefusedError, UnknownMessageError
from aipass_git.store.events import Event, EventStore
from aipass_git.store.objects import Ident
from aipass_git.store.tree_view import TreeView

# (ours, theirs) -> a line saying what came from theirs; OURS is edited into the merged
# state in place. THEIRS is only read.
Merge = Callable[[TreeView, TreeView], str]
# (a document's bytes, the entity's id) -> the document, validated; raises AipassError
# naming the ref, the field and what to do (anyone who can push a ref can write one)
Parse = Callable[[bytes, str], dict]


@dataclass(frozen=True)
class Kind:
    name: str  # "mailbox", "PR": for messages
    namespace: str  # "refs/aipass/mail/"
    id_pattern: re.Pattern[str]  # what follows the namespace
    merge: Merge
    list_hint: str  # where a person sees them all, for "no such id" errors
    document: str | None = None  # the file a tip's tree holds (pr.json); None: a tree of many
    parse: Parse | None = None  # DOCUMENT read and validated: the state's schema

    def ref(self, entity_id: str) -> str:
        return self.namespace + entity_id

    def id_of(self, ref: str) -> str | None:
        """The id REF names, or None when it is not one of this kind's (a stray ref)."""
        if not ref.startswith(self.namespace):
            return None
        rest = ref[len(self.namespace):]
        return rest if self.id_pattern.fullmatch(rest) else None


def ids(store: EventStore, kind: Kind) -> list[str]:
    """The ids of every entity of KIND in the repository, sorted."""
    return sorted(i for ref, _ in git.list_refs(store.repo.root, kind.namespace)
                  if (i := kind.id_of(ref)) is not None)


def resolve(kind: Kind, known: list[str], raw: str) -> str:
    """The one id among KNOWN that RAW is a prefix of (case aside)."""
    prefix = raw.strip().lower()
    matches = [i for i in known if i.startswith(prefix)] if prefix else []
    if not matches:
        raise UnknownMessageError(f"no {kind.name} {raw!r}", kind.list_hint)
    if len(matches) > 1:
        shown = ", ".join(m[:14] for m in matches[:4])
        raise RefusedError(f"{kind.name} id {raw!r} is ambiguous ({shown})", "give more characters")
    return matches[0]


def merge_tips(store: EventStore, kind: Kind, ref: str, ours: str, theirs: str, author: Ident) -> tuple[str, str]:
    """A commit whose parents are OURS and THEIRS and whose tree is KIND's merge of their
    states (written, not yet on any ref), and a line saying what THEIRS brought. The
    caller has seen that neither contains the other (else one of them is the answer)."""
    view = TreeView(store, store.tree_of(ours))
    other = TreeView(store, store.tree_of(theirs))
    entity_id = ref[len(kind.namespace):]
    if kind.parse is not None and kind.document is not None:
        for tip, side in ((ours, view), (theirs, other)):
            data = side.read(kind.document)
            if data is None:
                raise RefusedError(f"{ref} at {tip[:12]} holds no {kind.document}", f"see what wrote it: git log {tip[:12]}")
            kind.parse(data, entity_id)  # a state that breaks the schema is named, not merged
    try:
        summary = kind.merge(view, other)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        # either side may hold what anyone who can push wrote: a state the kind cannot
        # read stops this entity's merge, said in words, and nothing else
        raise AipassError(f"a side's {kind.name} state does not read ({type(exc).__name__}: {exc})",
                          f"see what wrote it: git log {ours[:12]} {theirs[:12]}") from exc
    tree = view.flush()
    event = Event("merge", f"{kind.name}: merge {entity_id} ({summary})", author,
                  {"Aipass-Merge": theirs})
    return store.writer.commit(tree, [ours, theirs], author, author, store.message_of(event), store.signer(author)), summary


class Book:
    """Reads the entities of KIND whose tip tree holds one document (PRs, plans, claims):
    every one in one batch, or one by id prefix, each validated by the kind's parse."""

    def __init__(self, store: EventStore, kind: Kind) -> None:
        assert kind.document is not None and kind.parse is not None, f"{kind.name} has no document"
        self.store = store
        self.kind = kind
        self.file = kind.document
        self.parse = kind.parse

    def ids(self) -> list[str]:
        return ids(self.store, self.kind)

    def all(self) -> list[dict]:
        found = self.ids()
        if not found:
            return []
        blobs = self.store.reader.read_many([f"{self.kind.ref(i)}:{self.file}" for i in found])
        return [self.parse(data, i) for i, (_, data) in zip(found, blobs)]

    def readable(self) -> tuple[list[dict], dict[str, str]]:
        """Every entity that parses, in one batch, and id -> why for those that do not
        (anyone who can push a ref can write one): for whoever must go on past a bad one."""
        found = self.ids()
        if not found:
            return [], {}
        blobs = self.store.reader.read_many([f"{self.kind.ref(i)}:{self.file}" for i in found], missing_ok=True)
        docs, bad = [], {}
        for entity_id, read in zip(found, blobs):
            data = read[1] if read is not None else None
            try:
                if data is None:
                    raise RefusedError(f"{self.kind.ref(entity_id)} holds no {self.file}", "this ref was not written by aipass-git")
                docs.append(self.parse(data, entity_id))
            except AipassError as exc:
                bad[entity_id] = exc.message
        return docs, bad

    def get(self, raw_id: str) -> dict:
        entity_id = resolve(self.kind, self.ids(), raw_id)
        data = self.store.view(self.kind.ref(entity_id)).read(self.file)
        if data is None:
            raise RefusedError(f"{self.kind.ref(entity_id)} holds no {self.file}", "this ref was not written by aipass-git")
        return self.parse(data, entity_id)
