"""A derived index of every mailbox's summary lines, so that questions across mailboxes
(what waits undone, where a thread's messages are, which message an id prefix names)
do not read every mailbox on every command.

One SQLite file in the git common dir (`aipass/index/mail.sqlite`), keyed by the
mailbox refs' tips: each use first asks git for the tips (one `for-each-ref`) and re-reads,
in one transaction, only the message folders that changed in the mailboxes whose tip moved. It is never the source of truth:
deleting it loses nothing (the next use rebuilds it), and `git aipass reindex` rebuilds
it on purpose. A file SQLite cannot read is dropped and rebuilt.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any, Iterable

from aipass_git.mail import mailbox
from aipass_git.store.events import EventStore

VERSION = "1"
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS boxes (owner TEXT PRIMARY KEY, tip TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS lines (
    owner TEXT NOT NULL, id TEXT NOT NULL, thread TEXT, kind TEXT, status TEXT, line TEXT NOT NULL,
    PRIMARY KEY (owner, id)
);
CREATE INDEX IF NOT EXISTS lines_thread ON lines (thread);
CREATE INDEX IF NOT EXISTS lines_id ON lines (id);
CREATE INDEX IF NOT EXISTS lines_open ON lines (kind, status);
"""


class SummaryIndex:
    """Use inside the EventStore it reads mailboxes through."""

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.root = store.repo.root
        self.path = store.repo.runtime_dir / "index" / "mail.sqlite"
        self.db = self._open()
        self.refreshed = False

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for attempt in (1, 2):
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            try:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                db.executescript(SCHEMA)
                found = db.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()
                if found is None or found[0] != VERSION:
                    with _transaction(db):
                        db.execute("DELETE FROM boxes")
                        db.execute("DELETE FROM lines")
                        db.execute("INSERT OR REPLACE INTO meta VALUES ('version', ?)", (VERSION,))
                return db
            except sqlite3.DatabaseError:
                db.close()
                if attempt == 2:
                    raise
                for suffix in ("", "-wal", "-shm"):  # derived: drop it and build it again
                    self.path.with_name(self.path.name + suffix).unlink(missing_ok=True)
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "SummaryIndex":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def refresh(self) -> int:
        """Bring the index up to the mailbox refs; returns how many mailboxes were re-read."""
        if self.refreshed:
            return 0
        tips = mailbox.tips(self.root)
        known = dict(self.db.execute("SELECT owner, tip FROM boxes"))
        if all(known.get(o) == t for o, t in tips.items()) and set(known) <= set(tips):
            self.refreshed = True
            return 0
        with _transaction(self.db):  # the write lock first: two refreshers do the work once
            known = dict(self.db.execute("SELECT owner, tip FROM boxes"))
            moved = [o for o, t in tips.items() if known.get(o) != t]
            gone = [o for o in known if o not in tips]
            # a mailbox indexed at a commit still here: only its folders that changed since
            # are read, and their lines replaced; any other is read whole
            spans = {owner: (known[owner] if owner in known and self.store.reader.resolve(known[owner]) else None,
                             tips[owner]) for owner in moved}
            for owner in gone + [o for o in moved if spans[o][0] is None]:
                self.db.execute("DELETE FROM lines WHERE owner = ?", (owner,))
                self.db.execute("DELETE FROM boxes WHERE owner = ?", (owner,))
            changes = mailbox.folder_changes(self.store, spans)
            owners = [owner for owner in moved for _ in changes[owner]]
            befores = mailbox.index_lines(self.store, [before for owner in moved for before, _ in changes[owner]])
            afters = mailbox.index_lines(self.store, [now for owner in moved for _, now in changes[owner]])
            dropped = [(owner, l["id"]) for owner, before, after in zip(owners, befores, afters)
                       for l in before if l["id"] not in {a["id"] for a in after}]
            self.db.executemany("DELETE FROM lines WHERE owner = ? AND id = ?", dropped)
            self.db.executemany(
                "INSERT OR REPLACE INTO lines VALUES (?, ?, ?, ?, ?, ?)",
                [(owner, l["id"], l.get("thread"), l.get("kind"), l.get("status"), json.dumps(l))
                 for owner, after in zip(owners, afters) for l in after])
            self.db.executemany("INSERT OR REPLACE INTO boxes VALUES (?, ?)", [(owner, tips[owner]) for owner in moved])
        self.refreshed = True
        return len(moved) + len(gone)

    def rebuild(self) -> int:
        with _transaction(self.db):
            self.db.execute("DELETE FROM boxes")
            self.db.execute("DELETE FROM lines")
        self.refreshed = False
        return self.refresh()

    def _rows(self, sql: str, args: Iterable[Any] = ()) -> list[tuple[str, dict[str, Any]]]:
        self.refresh()
        return [(owner, json.loads(line)) for owner, line in self.db.execute(sql, tuple(args))]

    def undone_dispatches(self) -> dict[str, list[dict[str, Any]]]:
        """Owner -> the summaries of its dispatches that are not done, oldest first."""
        out: dict[str, list[dict[str, Any]]] = {}
        for owner, line in self._rows("SELECT owner, line FROM lines WHERE kind = 'dispatch' AND status != 'done' ORDER BY id"):
            out.setdefault(owner, []).append(line)
        return out

    def unread_mail(self) -> dict[str, list[dict[str, Any]]]:
        """Owner -> the summaries of its mail (not dispatches) nobody has read, oldest first."""
        out: dict[str, list[dict[str, Any]]] = {}
        for owner, line in self._rows("SELECT owner, line FROM lines WHERE kind = 'mail' AND status = 'new' ORDER BY id"):
            out.setdefault(owner, []).append(line)
        return out

    def in_thread(self, thread_id: str) -> dict[str, list[dict[str, Any]]]:
        """Owner -> the summaries of the thread's messages in that mailbox."""
        out: dict[str, list[dict[str, Any]]] = {}
        for owner, line in self._rows("SELECT owner, line FROM lines WHERE thread = ? ORDER BY id", (thread_id,)):
            out.setdefault(owner, []).append(line)
        return out

    def all_lines(self) -> list[tuple[str, dict[str, Any]]]:
        """(owner, summary) of every message in every mailbox."""
        return self._rows("SELECT owner, line FROM lines ORDER BY id")

    def tips(self) -> dict[str, str]:
        """Owner -> its mailbox tip."""
        self.refresh()
        return dict(self.db.execute("SELECT owner, tip FROM boxes"))

    def owned(self, owners: Iterable[str] | None = None) -> dict[str, tuple[str, list[str]]]:
        """Owner -> (its mailbox tip, the ids of its messages), of OWNERS (default: all)."""
        tips = self.tips()
        wanted = set(tips) if owners is None else set(owners) & set(tips)
        out: dict[str, tuple[str, list[str]]] = {owner: (tips[owner], []) for owner in wanted}
        if not wanted:
            return out
        if owners is None:
            rows = self.db.execute("SELECT owner, id FROM lines ORDER BY owner, id")
        else:
            marks = ",".join("?" * len(wanted))
            rows = self.db.execute(f"SELECT owner, id FROM lines WHERE owner IN ({marks}) ORDER BY owner, id", sorted(wanted))
        for owner, mid in rows:
            out[owner][1].append(mid)
        return out

    def with_prefix(self, prefix: str) -> list[tuple[str, dict[str, Any]]]:
        """(owner, summary) of every message whose id starts with PREFIX (a range on the id index)."""
        return self._rows("SELECT owner, line FROM lines WHERE id >= ? AND id < ? ORDER BY id",
                          (prefix, prefix + "\U0010ffff"))


class _transaction:
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error): the write lock up front."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind, *exc) -> None:
        self.db.execute("COMMIT" if kind is None else "ROLLBACK")

