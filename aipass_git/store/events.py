"""Event refs: a ref per entity, one commit per event, the tip tree holding the state.

This is the generic layer (after git-bug's entity DAG). A concrete entity (mailbox, PR,
plan) passes an `apply` function that edits a `TreeView` of the current state and returns
the `Event` describing the change; the store turns that into a commit and moves the ref
by compare-and-swap. A lost race re-reads the tip and applies the event again, so an
event is never lost and never applied to a stale state.

Writers of one ref first take a per-ref file lock: it only spares them the retries (30
writers on one ref otherwise retry several times per event); correctness rests on the CAS.
"""

from __future__ import annotations

import random
import subprocess
import time
from collections import OrderedDict
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator

from aipass_git.core import git
from aipass_git.core.errors import AipassError
from aipass_git.core.repo import Repo
from aipass_git.store.objects import TREE_MODE, Ident, ObjectReader, ObjectWriter, commit_tree_and_parents, decode_tree
from aipass_git.store.refs import RefTransactions, RefUpdate
from aipass_git.store.tree_view import TreeView

MAX_ATTEMPTS = 50
LOCK_TIMEOUT = 120.0


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


class EventStore:
    """Reads and writes event refs of one repository. Use as a context manager."""

    def __init__(self, repo: Repo) -> None:
        self.repo = repo
        self.reader = ObjectReader(repo.root)
        self.writer = ObjectWriter(repo.objects_dir, repo.hash_name)
        self.refs = RefTransactions(repo.root, "0" * (2 * repo.hash_len))
        self._trees: OrderedDict[str, dict[str, tuple[str, str]]] = OrderedDict()
        # What this process wrote itself need not be read back through git.
        self._commit_trees: dict[str, str] = {}
        self._known_tips: dict[str, str | None] = {}

    def __enter__(self) -> "EventStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.reader.close()
        self.refs.close()

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
            kind, data = self.reader.read(tree)
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
        if len(self._trees) > 4096:
            self._trees.popitem(last=False)

    def blob(self, oid: str) -> bytes:
        return self.reader.read(oid)[1]

    def blobs(self, oids: list[str]) -> list[bytes]:
        return [data for _, data in self.reader.read_many(oids)]

    def collect(self, tree: str, *, depth: int, name: str) -> list[bytes]:
        """Contents of every blob called NAME exactly DEPTH folders below TREE.

        Each level is read in one pipelined batch, so a fanned-out layout of a thousand
        folders costs a few round trips, not a thousand.
        """
        level = [tree]
        for step in range(depth + 1):
            missing = [t for t in level if t not in self._trees]
            for oid, (_, data) in zip(missing, self.reader.read_many(missing)):
                self._remember_tree(oid, decode_tree(data, self.repo.hash_len))
            if step == depth:
                break
            level = [oid for t in level for mode, oid in self.tree_entries(t).values() if mode == TREE_MODE]
        blobs = []
        for t in level:
            entry = self.tree_entries(t).get(name)
            if entry is not None:
                blobs.append(entry[1])
        return self.blobs(blobs)

    def view(self, ref: str) -> TreeView:
        """A read-only snapshot of REF's current state (empty when the ref does not exist)."""
        tip = self.tip(ref)
        return TreeView(self, self.tree_of(tip) if tip else None)

    def history(self, ref: str, limit: int | None = None) -> list[HistoryEntry]:
        """The events of REF, newest first (one git process for the whole walk)."""
        if self.tip(ref) is None:
            return []
        fmt = "%H%x1f%an%x1f%ae%x1f%aI%x1f%s%x1f%(trailers:only,unfold)%x1e"
        args = ["log", f"--format={fmt}", *([f"-n{limit}"] if limit else []), ref, "--"]
        out = git.run(args, self.repo.root).stdout.decode("utf-8", "replace")
        entries = []
        for record in out.split("\x1e"):
            record = record.strip("\n")
            if not record:
                continue
            commit, author, email, when, subject, trailer_text = record.split("\x1f")
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
            for attempt in range(MAX_ATTEMPTS):
                # The tip this process last wrote is usually still the tip (we hold the
                # lock); if anyone else moved the ref, the CAS fails and we read it again.
                tip = self._known_tips[ref] if attempt == 0 and ref in self._known_tips else self.tip(ref)
                view = TreeView(self, self.tree_of(tip) if tip else None)
                event = apply(view)
                if event is None:
                    if attempt == 0 and ref in self._known_tips:
                        del self._known_tips[ref]
                        continue  # decide "nothing to do" on the real tip, not a cached one
                    return None
                tree = view.flush()
                commit = self.writer.commit(tree, [tip] if tip else [], event.author, event.author, event.message())
                if self.refs.apply([RefUpdate(ref, commit, tip)]):
                    if len(self._commit_trees) > 10_000:
                        self._commit_trees.clear()
                    self._commit_trees[commit] = tree
                    self._known_tips[ref] = commit
                    return commit
                self._known_tips.pop(ref, None)
                _backoff(attempt)
        raise _gave_up(ref)

    def append_many(self, batch: list[tuple[str, Apply]]) -> dict[str, str]:
        """Apply many events, in order, to one or more refs in one transaction.

        Every event is still its own commit; `git fast-import` writes them all into one
        pack, and one CAS transaction moves every ref or none. Returns ref -> new tip.
        """
        refs = sorted({ref for ref, _ in batch})
        with self._locked(refs):
            for attempt in range(MAX_ATTEMPTS):
                tips = {ref: self.tip(ref) for ref in refs}
                new_tips = self._fast_import(batch, tips)
                if not new_tips:
                    return {}
                updates = [RefUpdate(ref, new, tips[ref]) for ref, new in new_tips.items()]
                if self.refs.apply(updates):
                    return new_tips
                _backoff(attempt)
        raise _gave_up(", ".join(refs))

    def _fast_import(self, batch: list[tuple[str, Apply]], tips: dict[str, str | None]) -> dict[str, str]:
        views = {ref: TreeView(self, self.tree_of(tip) if tip else None) for ref, tip in tips.items()}
        heads: dict[str, str] = {}  # ref -> ":mark" of its newest commit in this stream
        stream = bytearray(b"feature done\n")
        mark = 0
        scratch = f"refs/aipass-import/{random.getrandbits(64):016x}"
        for ref, apply in batch:
            view = views[ref]
            event = apply(view)
            if event is None:
                continue
            mark += 1
            parent = heads.get(ref) or tips[ref]
            message = event.message().encode("utf-8")
            stamp = event.author.stamp().encode("utf-8")
            stream += f"reset {scratch}\n".encode()
            stream += f"commit {scratch}\nmark :{mark}\n".encode()
            stream += b"author " + stamp + b"\ncommitter " + stamp + b"\n"
            stream += f"data {len(message)}\n".encode() + message + b"\n"
            if parent:
                stream += f"from {parent}\n".encode()
            for path, data in view.take_changes():
                if data is None:
                    stream += f"D {path}\n".encode()
                else:
                    stream += f"M 100644 inline {path}\ndata {len(data)}\n".encode() + data + b"\n"
            heads[ref] = f":{mark}"
        if not heads:
            return {}
        for ref, head in heads.items():
            stream += f"get-mark {head}\n".encode()
        stream += f"reset {scratch}\nfrom {'0' * (2 * self.repo.hash_len)}\n".encode()
        stream += b"done\n"
        proc = subprocess.run(
            ["git", "fast-import", "--quiet", "--date-format=raw"], cwd=self.repo.root,
            input=bytes(stream), capture_output=True, timeout=600,
        )
        if proc.returncode != 0:
            raise AipassError(
                f"git fast-import failed: {proc.stderr.decode('utf-8', 'replace').strip().splitlines()[-1:]}",
                "check the repository with: git fsck",
            )
        marks = proc.stdout.decode().split()
        return dict(zip(heads, marks))

    @contextmanager
    def _locked(self, refs: list[str]) -> Iterator[None]:
        from filelock import FileLock, Timeout  # deferred: readers never pay for it

        folder = self.repo.runtime_dir / "locks" / "refs"
        folder.mkdir(parents=True, exist_ok=True)
        with ExitStack() as stack:
            for ref in sorted(refs):  # one global order: two batches never deadlock
                lock = FileLock(str(folder / (ref.replace("/", "%") + ".lock")))
                try:
                    lock.acquire(timeout=LOCK_TIMEOUT)
                except Timeout:
                    raise AipassError(
                        f"{ref} has been locked by another writer for {LOCK_TIMEOUT:g} s",
                        "another aipass process is stuck; stop it and retry",
                    ) from None
                stack.callback(lock.release)
            yield


def _backoff(attempt: int) -> None:
    # jitter, so that writers who lost the same race do not collide again in lockstep
    time.sleep(random.uniform(0, min(0.2, 0.002 * 2**attempt)))


def _gave_up(what: str) -> AipassError:
    return AipassError(
        f"could not update {what}: it kept changing under {MAX_ATTEMPTS} attempts",
        "something outside aipass keeps rewriting it; check with: git log --all --oneline -5",
    )
