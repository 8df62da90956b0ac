"""Event refs: a ref per entity, one commit per event, the tip tree holding the state.

This is the generic layer (after git-bug's entity DAG). A concrete entity (a mailbox, a
PR record) passes an `apply` function that edits a `TreeView` of the current state and returns
the `Event` describing the change; the store turns that into a commit and moves the ref
by compare-and-swap. A lost race re-reads the tip and applies the event again, so an
event is never lost and never applied to a stale state.

Writers of one ref first take a per-ref file lock: it only spares them the retries (30
writers on one ref otherwise retry several times per event); correctness rests on the CAS.

A batch moves many refs in one transaction, which git does not make atomic across a
crash (it renames one lock after another). So a batch is journalled (journal.py) and
runs with every single writer held off (the exclusive side of a gate single writers
pass shared): a batch a crash interrupted is rolled forward by the next writer, before
anyone else writes to its refs, and its scratch ref is removed.
"""

from __future__ import annotations

import os
import random
import time
from collections import OrderedDict
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator

from aipass_git.core import config as config_mod, git
from aipass_git.core.errors import AipassError
from aipass_git.core.repo import Repo
from aipass_git.store.objects import TREE_MODE, Ident, ObjectReader, ObjectWriter, commit_tree_and_parents, decode_tree
from aipass_git.core import faults
from aipass_git.store import housekeeping, locks, remote, signing
from aipass_git.store.keyring import Keyring, own_ssh_key
from aipass_git.store.journal import Entry, Journal
from aipass_git.store.pack import PackWriter
from aipass_git.store.fast_import import ImportStream
from aipass_git.store.refs import RefTransactions, RefUpdate
from aipass_git.store.tree_view import TreeView

MAX_ATTEMPTS = 50
LOCK_TIMEOUT = 120.0
# From this many events on, a batch streams through one `git fast-import` (its start
# costs more than writing a few commits in-process).
STREAM_THRESHOLD = 8
TREES_KEPT = 16_384  # decoded trees remembered: a batch to 1,000 refs reads about 3,000
# A ref whose git lock a live writer keeps: give up after this many waits of
# locks.STALE_SECONDS, naming the lock, rather than after every attempt.
LOCKED_ATTEMPTS = 4


@dataclass
class Event:
    """What one commit on an event ref records."""

    kind: str  # Aipass-Event trailer: deliver, read, done, opened, ...
    subject: str  # commit subject, e.g. "mail: devpulse -> quality: review the API"
    author: Ident
    trailers: dict[str, str] = field(default_factory=dict)
    body: str = ""

    def message(self) -> str:
        subject = " ".join(self.subject.split())[:200]
        trailers = {"Aipass-Event": self.kind, **self.trailers}
        parts = [subject]
        if self.body:
            parts.append(self.body.rstrip("\n"))
        parts.append("\n".join(f"{k}: {' '.join(str(v).split())}" for k, v in trailers.items()))
        return "\n\n".join(parts) + "\n"


Apply = Callable[[TreeView], "Event | None"]


@dataclass
class HistoryEntry:
    commit: str
    author: str
    email: str
    time: str
    subject: str
    trailers: dict[str, str]


CLONE_TRAILER = "Aipass-Clone"


def _tree_id(entry: tuple[str, str] | None) -> str | None:
    return entry[1] if entry is not None and entry[0] == TREE_MODE else None


class EventStore:
    """Reads and writes event refs of one repository. Use as a context manager."""

    def __init__(self, repo: Repo) -> None:
        self.repo = repo
        self.reader = ObjectReader(repo.root)
        self.writer = ObjectWriter(repo.objects_dir, repo.hash_name)
        self.refs = RefTransactions(repo.root, "0" * (2 * repo.hash_len))
        self.journal = Journal(repo)
        self.gate = locks.Gate(repo.runtime_dir / "locks" / "refs.gate")
        self.keys = Keyring(repo.root)
        self._clone: str | None = None
        self._wrote = False
        self._must_sign: bool | None = None
        self._trees: OrderedDict[str, dict[str, tuple[str, str]]] = OrderedDict()
        # What this process wrote itself need not be read back through git.
        self._commit_trees: dict[str, str] = {}
        self._blobs: dict[str, bytes] = {}  # read ahead by `prefetch` for a batch, dropped after it

    def __enter__(self) -> "EventStore":
        return self

    def message_of(self, event: Event) -> str:
        """EVENT's commit message, stamped with the clone that wrote it (`Aipass-Clone`):
        rules fire where an event happened, not in every clone that later fetches it."""
        self._wrote = True
        if self._clone is None:
            self._clone = remote.clone_name(self.repo.root)
        return Event(event.kind, event.subject, event.author, {**event.trailers, CLONE_TRAILER: self._clone},
                     event.body).message()

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.reader.close()
        self.refs.close()
        if self._wrote:
            housekeeping.kick(self.repo)  # packs and loose objects past their bounds: repacked in the background

    # -- reading ------------------------------------------------------------------------

    def tip(self, ref: str) -> str | None:
        return self.reader.resolve(ref)

    def tree_of(self, commit: str) -> str:
        tree = self._commit_trees.get(commit)
        if tree is not None:
            return tree
        kind, data = self.reader.read(commit)
        if kind != "commit":
            raise AipassError(f"{commit} is a {kind}, not a commit", "check the ref with: git aipass doctor")
        return commit_tree_and_parents(data)[0]

    def tree_entries(self, tree: str) -> dict[str, tuple[str, str]]:
        entries = self._trees.get(tree)
        if entries is None:
            pending = self.writer.get(tree) if isinstance(self.writer, PackWriter) else None
            kind, data = pending or self.reader.read(tree)
            entries = decode_tree(data, self.repo.hash_len)
            self._remember_tree(tree, entries)
        else:
            self._trees.move_to_end(tree)
        return entries

    def write_tree(self, entries: dict[str, tuple[str, str]]) -> str:
        tree = self.writer.tree(entries)
        self._remember_tree(tree, dict(entries))
        return tree

    def _remember_tree(self, tree: str, entries: dict[str, tuple[str, str]]) -> None:
        self._trees[tree] = entries
        if len(self._trees) > TREES_KEPT:
            self._trees.popitem(last=False)

    def blob(self, oid: str) -> bytes:
        ahead = self._blobs.get(oid)
        if ahead is not None:
            return ahead
        pending = self.writer.get(oid) if isinstance(self.writer, PackWriter) else None
        return pending[1] if pending else self.reader.read(oid)[1]

    def blobs(self, oids: list[str]) -> list[bytes]:
        if isinstance(self.writer, PackWriter):
            return [self.blob(oid) for oid in oids]
        return [data for _, data in self.reader.read_many(oids)]

    def trees_of(self, commits: list[str]) -> list[str]:
        """`tree_of` each of COMMITS, the ones not known yet read in one batch."""
        missing = sorted({c for c in commits if c not in self._commit_trees})
        if len(self._commit_trees) + len(missing) > 10_000:
            self._commit_trees.clear()
        for commit, (kind, data) in zip(missing, self.reader.read_many(missing)):
            if kind != "commit":
                raise AipassError(f"{commit} is a {kind}, not a commit", "check the ref with: git aipass doctor")
            self._commit_trees[commit] = commit_tree_and_parents(data)[0]
        return [self._commit_trees.get(c) or self.tree_of(c) for c in commits]

    def _read_level(self, trees) -> dict[str, dict[str, tuple[str, str]]]:
        """Entries of those of TREES not cached yet, read in one pipelined batch and handed
        back (held here: a big level outgrows the LRU)."""
        missing = sorted({t for t in trees if t and t not in self._trees})
        read: dict[str, dict[str, tuple[str, str]]] = {}
        for oid, (_, data) in zip(missing, self.reader.read_many(missing)):
            read[oid] = decode_tree(data, self.repo.hash_len)
            self._remember_tree(oid, read[oid])
        return read

    def folders(self, tree: str, depth: int = 2, *, load: bool = True) -> list[str]:
        """The trees exactly DEPTH folders below TREE (loaded too, when LOAD). Each level is
        read in one batch: a fanned-out layout costs a few round trips, not a thousand."""
        level = [tree]
        for step in range(depth + 1):
            if step == depth and not load:
                break
            read = self._read_level(level)
            if step < depth:
                level = [oid for t in level for mode, oid in (read.get(t) or self.tree_entries(t)).values()
                         if mode == TREE_MODE]
        return level

    def changed_folders_many(self, pairs: list[tuple[str | None, str]], depth: int = 2
                             ) -> list[list[tuple[dict[str, tuple[str, str]] | None, dict[str, tuple[str, str]]]]]:
        """For each (OLD, NEW) pair of trees (OLD None: nothing before), the folders exactly
        DEPTH below whose id differs between the two, as (its entries under OLD or None,
        its entries under NEW, empty where NEW has none). Only the subtrees that changed
        are read, one batch per level for all pairs: what a send added to a thousand
        mailboxes costs a few round trips, however much mail they hold."""
        levels: list[list[tuple[str | None, str | None]]] = [[(old, new)] if old != new else [] for old, new in pairs]
        for step in range(depth + 1):
            read = self._read_level(t for level in levels for pair in level for t in pair)

            def entries(tree: str | None) -> dict[str, tuple[str, str]]:
                return (read.get(tree) or self.tree_entries(tree)) if tree else {}

            if step == depth:
                return [[(entries(old) if old else None, entries(new)) for old, new in level] for level in levels]
            deeper = []
            for level in levels:
                found = []
                for old, new in level:
                    before, after = entries(old), entries(new)
                    for name in sorted(before.keys() | after.keys()):
                        was, now = (_tree_id(side.get(name)) for side in (before, after))
                        if was != now:
                            found.append((was, now))
                deeper.append(found)
            levels = deeper
        raise AssertionError("unreachable")

    def collect(self, tree: str, *, name: str, depth: int = 2) -> list[bytes]:
        """Contents of every blob called NAME exactly DEPTH folders below TREE, asked for by
        path inside each folder: a listing never reads the folders' other entries."""
        found = self.reader.read_many([f"{t}:{name}" for t in self.folders(tree, depth, load=False)], missing_ok=True)
        return [item[1] for item in found if item is not None]

    def view(self, ref: str) -> TreeView:
        """A read-only snapshot of REF's current state (empty when the ref does not exist)."""
        tip = self.tip(ref)
        return TreeView(self, self.tree_of(tip) if tip else None)

    def history(self, ref: str, limit: int | None = None) -> list[HistoryEntry]:
        """The events of REF, newest first (one git process for the whole walk)."""
        if self.tip(ref) is None:
            return []
        entries = []
        fields = ["%H", "%an", "%ae", "%aI", "%s", "%(trailers:only,unfold)"]
        for commit, author, email, when, subject, trailer_text in git.log(self.repo.root, [ref], fields, limit=limit):
            trailers = {}
            for line in trailer_text.splitlines():
                key, sep, value = line.partition(": ")
                if sep:
                    trailers[key] = value
            entries.append(HistoryEntry(commit, author, email, when, subject, trailers))
        return entries

    # -- writing ------------------------------------------------------------------------

    def append(self, ref: str, apply: Apply) -> str | None:
        """Apply one event to REF; returns the new commit, or None when APPLY had nothing to do."""
        with self._locked([ref]):
            blocked = 0
            for attempt in range(MAX_ATTEMPTS):
                # Read under the lock, never from a cache: another process may have written
                # since, and a stale tip would only buy a failed CAS and a wasted commit.
                tip = self.tip(ref)
                commit = self.draft(tip, apply)
                if commit is None:
                    return None
                faults.point("event-written")
                if self.refs.apply([RefUpdate(ref, commit, tip)]):
                    return commit
                blocked = self._still_blocked(blocked)
                _backoff(attempt)
        raise _gave_up(ref)

    def signer(self, who: Ident) -> Callable[[bytes], bytes] | None:
        """How WHO's commits get signed: their key in this clone's keyring. Without one, an
        unsigned commit where the project allows it (`trust: any`), else a refusal:
        speaking as someone needs their key."""
        key = self.keys.get(who.email)
        if key is None and not who.email.endswith("@aipass.invalid"):
            key = own_ssh_key(self.repo.root)
        if key is not None:
            return key.sign_commit
        if self._must_sign is None:
            try:
                self._must_sign = config_mod.load(self.repo).trust == "signed"
            except AipassError:
                self._must_sign = False  # not set up (a bare store): nothing to enforce
        if self._must_sign:
            raise signing.key_error(who.email)
        return None

    def draft(self, tip: str | None, apply: Apply) -> str | None:
        """The commit APPLY makes on top of TIP, written but on no ref (None: nothing to do).
        A dispatch claim is drafted, offered to the remote, and only then made local."""
        view = TreeView(self, self.tree_of(tip) if tip else None)
        event = apply(view)
        if event is None:
            return None
        tree = view.flush()
        commit = self.writer.commit(tree, [tip] if tip else [], event.author, event.author, self.message_of(event),
                                    self.signer(event.author))
        if len(self._commit_trees) > 10_000:
            self._commit_trees.clear()
        self._commit_trees[commit] = tree
        return commit

    def tips(self, refs: list[str]) -> dict[str, str | None]:
        """The tip of each of REFS (None for one that does not exist): one `for-each-ref`
        for many, not a round trip each."""
        if len(refs) < 16:
            return {ref: self.tip(ref) for ref in refs}
        # their common folder listed whole and filtered here: given a thousand patterns, git
        # matches every ref against each of them (~140 ms at 1,000 mailboxes, against ~6)
        common = os.path.commonprefix(refs)
        found = dict(git.list_refs(self.repo.root, common[:common.rfind("/") + 1]))
        return {ref: found.get(ref) for ref in refs}

    def prefetch(self, tips: dict[str, str | None], reads: dict[str, list[str]]) -> None:
        """Read ahead, one pipelined batch per tree level, what a batch of appends will read:
        each ref's tip commit and tree, and the trees and blobs on the paths READS names
        for it. A thousand refs then cost a few round trips to git, not thousands."""
        commits = [tip for tip in tips.values() if tip and tip not in self._commit_trees]
        for tip, read in zip(commits, self.reader.read_many(commits, missing_ok=True)):
            if read is not None and read[0] == "commit":
                self._commit_trees[tip] = commit_tree_and_parents(read[1])[0]
        frontier = [(self._commit_trees[tip], path.split("/")) for ref, tip in tips.items()
                    if tip and tip in self._commit_trees for path in reads.get(ref, [])]
        while frontier:
            wanted = sorted({tree for tree, _ in frontier if tree not in self._trees})
            for tree, read in zip(wanted, self.reader.read_many(wanted, missing_ok=True)):
                if read is not None and read[0] == "tree":
                    self._remember_tree(tree, decode_tree(read[1], self.repo.hash_len))
            deeper, blobs = [], []
            for tree, parts in frontier:
                entry = self._trees.get(tree, {}).get(parts[0])
                if entry is None:
                    continue
                if len(parts) > 1 and entry[0] == TREE_MODE:
                    deeper.append((entry[1], parts[1:]))
                elif len(parts) == 1 and entry[0] != TREE_MODE:
                    blobs.append(entry[1])
            blobs = sorted(set(blobs))
            for oid, read in zip(blobs, self.reader.read_many(blobs, missing_ok=True)):
                if read is not None:
                    self._blobs[oid] = read[1]
            frontier = deeper

    def append_many(self, batch: list[tuple[str, Apply]], *, reads: dict[str, list[str]] | None = None) -> dict[str, str]:
        """Apply many events, in order, to one or more refs in one transaction.

        Every event is still its own commit. A small batch writes them in-process; a large
        one streams them into `git fast-import`, which writes one pack. One CAS
        transaction then moves every ref or none (a crash included: see the module's
        docstring). READS: ref -> paths its event will read, read ahead in batches
        (`prefetch`). Returns ref -> new tip.
        """
        refs = sorted({ref for ref, _ in batch})
        try:
            return self._append_many(batch, refs, reads or {})
        finally:
            self._blobs.clear()

    def _append_many(self, batch: list[tuple[str, Apply]], refs: list[str], reads: dict[str, list[str]]) -> dict[str, str]:
        with self.gate.exclusive():
            self.recover()
            for attempt in range(MAX_ATTEMPTS):
                tips = self.tips(refs)
                if len(refs) >= STREAM_THRESHOLD:
                    self.prefetch(tips, reads)
                scratch = f"refs/aipass-import/{os.getpid()}-{random.getrandbits(48):012x}"
                with self.journal.record("batch", {"phase": "importing", "scratch": scratch}) as entry:
                    if len(batch) < STREAM_THRESHOLD:
                        written, scratch_tip = self._write_in_process(batch, tips), None
                    elif self.keys.folder() is not None:
                        # fast-import (git 2.39) cannot write signed commits: a signing
                        # clone packs the batch itself (pack.py)
                        written, scratch_tip = self._write_packed(batch, tips), None
                    else:
                        written, scratch_tip = self._fast_import(batch, tips, scratch)
                    if not written:
                        return {}
                    updates = [RefUpdate(ref, new, tips[ref]) for ref, new in written.items()]
                    if scratch_tip:
                        updates.append(RefUpdate(scratch, None, scratch_tip))
                    entry.update(phase="committing", updates=[[u.ref, u.new, u.old] for u in updates])
                    faults.point("batch-journalled")
                    if self.refs.apply(updates):
                        faults.point("batch-applied")
                        return written
                    blocked = self.refs.blocked_by
                    if scratch_tip:  # this attempt's scratch ref goes
                        self.refs.apply([RefUpdate(scratch, None, scratch_tip)])
                if blocked is not None and attempt + 1 >= LOCKED_ATTEMPTS:
                    raise _locked_error(blocked)
                _backoff(attempt)
        raise _gave_up(", ".join(refs))

    def _write_in_process(self, batch: list[tuple[str, Apply]], tips: dict[str, str | None]) -> dict[str, str]:
        """The batch's commits as loose objects, as `append` writes one; ref -> new tip."""
        heads = dict(tips)
        written: dict[str, str] = {}
        for ref, apply in batch:
            head = heads[ref]
            view = TreeView(self, self.tree_of(head) if head else None)
            event = apply(view)
            if event is None:
                continue
            tree = view.flush()
            commit = self.writer.commit(tree, [head] if head else [], event.author, event.author, self.message_of(event),
                                        self.signer(event.author))
            self._commit_trees[commit] = tree
            heads[ref] = written[ref] = commit
        return written

    def _write_packed(self, batch: list[tuple[str, Apply]], tips: dict[str, str | None]) -> dict[str, str]:
        """As `_write_in_process`, with every object going into one pack."""
        loose, self.writer = self.writer, PackWriter(self.repo.root, self.repo.objects_dir, self.repo.hash_name)
        try:
            written = self._write_in_process(batch, tips)
            self.writer.finish()
            faults.point("batch-packed")
        finally:
            self.writer = loose
        return written

    def recover(self) -> int:
        """Finish the batches whose writers died; returns how many. The caller holds the
        gate exclusively, so no other writer runs meanwhile."""
        done = 0
        for entry in self.journal.orphans("batch"):
            self._finish_batch(entry)
            done += 1
        return done

    def _finish_batch(self, entry: Entry) -> None:
        doc = entry.doc
        if doc.get("phase") == "committing":
            pending, moved = [], []
            for ref, new, old in doc.get("updates", []):
                tip = self.tip(ref)
                if new is None:  # the scratch ref: goes whatever it holds
                    if tip is not None:
                        pending.append(RefUpdate(ref, None, tip))
                elif tip == old:
                    pending.append(RefUpdate(ref, new, old))
                elif tip != new:
                    moved.append(ref)  # written by something outside aipass since the crash
            if pending and not self.refs.apply(pending):
                raise AipassError(f"could not finish an interrupted batch ({entry.path.name}): its refs moved",
                                  "run: git aipass doctor")
            if moved:
                entry.path.replace(entry.path.with_suffix(".failed"))
        else:  # died before its transaction: the refs never moved; only the scratch ref may exist
            scratch = doc.get("scratch")
            tip = self.tip(scratch) if scratch else None
            if tip is not None:
                self.refs.apply([RefUpdate(scratch, None, tip)])
        entry.close()

    def _fast_import(self, batch: list[tuple[str, Apply]], tips: dict[str, str | None], scratch: str
                     ) -> tuple[dict[str, str], str | None]:
        """Stream the events into `git fast-import` (fast_import.py). Returns (ref -> new
        tip, the scratch ref's value)."""
        views = {ref: TreeView(self, self.tree_of(tip) if tip else None) for ref, tip in tips.items()}
        stream = ImportStream(self.repo.root, scratch)
        try:
            for ref, apply in batch:
                event = apply(views[ref])
                if event is not None:
                    stream.commit(ref, tips[ref], event.author.stamp(), self.message_of(event), views[ref].take_changes())
        except BrokenPipeError:
            pass  # git stopped reading the stream: finish() reports why
        except BaseException:
            stream.abort()
            raise
        new_tips = stream.finish()
        if not new_tips:
            return {}, None
        faults.point("batch-imported")
        return new_tips, new_tips[stream.on_scratch] if stream.on_scratch else None

    def _still_blocked(self, blocked: int) -> int:
        """Count consecutive failures on a lock that a live writer holds; give up, naming
        the lock, once they are too many."""
        lock = self.refs.blocked_by
        blocked = blocked + 1 if lock is not None else 0
        if lock is not None and blocked >= LOCKED_ATTEMPTS:
            raise _locked_error(lock)
        return blocked

    @contextmanager
    def _locked(self, refs: list[str]) -> Iterator[None]:
        folder = self.repo.runtime_dir / "locks" / "refs"
        while True:
            with ExitStack() as stack:
                stack.enter_context(self.gate.shared())
                # No batch runs while the gate is held shared: a record now is a dead one's.
                if not self.journal.has_records() or not self._has_orphans():
                    for ref in sorted(refs):  # one global order: two writers never deadlock
                        held = locks.Held(folder / (ref.replace("/", "%") + ".lock"), f"aipass writer of {ref}")
                        stack.enter_context(held.acquired(LOCK_TIMEOUT, "another aipass process is stuck; stop it and retry"))
                    yield
                    return
            with self.gate.exclusive():
                self.recover()

    def _has_orphans(self) -> bool:
        for entry in self.journal.orphans("batch"):
            entry.release()
            return True
        return False


def _backoff(attempt: int) -> None:
    # jitter, so that writers who lost the same race do not collide again in lockstep
    time.sleep(random.uniform(0, min(0.2, 0.002 * 2**attempt)))


def _locked_error(lock) -> AipassError:
    return AipassError(f"a ref is locked: {locks.describe(lock)}",
                       "another git process is writing it; if none is, remove that file "
                       "(git aipass doctor --fix does it for you)")


def _gave_up(what: str) -> AipassError:
    return AipassError(
        f"could not update {what}: it kept changing under {MAX_ATTEMPTS} attempts",
        "something outside aipass keeps rewriting it; check with: git log --all --oneline -5",
    )
