"""Documents as last parsed, so that a command over a thousand agents or claimants does
not parse and validate a thousand documents each time: `<common dir>/aipass/index/<name>.sqlite`,
one row per key with the stamp its source had when it was read (and validated): a
passport file's path and stat, a claims ref and its tip. A source whose stamp differs is
read again; the cache is derived and may be deleted at any time (a file SQLite cannot
read is dropped and rebuilt).
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from aipass_git.core.repo import Repo

SCHEMA = "CREATE TABLE IF NOT EXISTS docs (key TEXT PRIMARY KEY, stamp TEXT NOT NULL, doc TEXT NOT NULL)"


class ParsedCache:
    def __init__(self, repo: Repo, name: str) -> None:
        self.path = repo.runtime_dir / "index" / f"{name}.sqlite"
        self.db: sqlite3.Connection | None = None
        self.rows: dict[str, tuple[str, str]] | None = None
        self.pending: list[tuple[str, str, str]] = []

    def _open(self) -> sqlite3.Connection | None:
        if self.db is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.db = sqlite3.connect(self.path, timeout=5, isolation_level=None)
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute(SCHEMA)
            except sqlite3.DatabaseError:
                for suffix in ("", "-wal", "-shm"):  # derived: drop it; the next command builds it again
                    self.path.with_name(self.path.name + suffix).unlink(missing_ok=True)
                self.db = None
            except OSError:
                self.db = None  # no cache (a read-only repository): every passport is parsed
        return self.db

    def get(self, key: str, stamp: str) -> dict[str, Any] | None:
        """The document as read when its source had STAMP, or None."""
        if self.rows is None:
            db = self._open()
            try:
                self.rows = {k: (s, d) for k, s, d in db.execute("SELECT key, stamp, doc FROM docs")} if db else {}
            except sqlite3.DatabaseError:
                self.rows = {}
        found = self.rows.get(key)
        return json.loads(found[1]) if found is not None and found[0] == stamp else None

    def put(self, key: str, stamp: str, doc: dict[str, Any]) -> None:
        self.pending.append((key, stamp, json.dumps(doc)))

    def save(self) -> None:
        db = self._open() if self.pending else None
        if db is None:
            return
        try:
            db.execute("BEGIN IMMEDIATE")
            db.executemany("INSERT OR REPLACE INTO docs VALUES (?, ?, ?)", self.pending)
            db.execute("COMMIT")
        except sqlite3.DatabaseError:
            pass  # another process holds it: only a cache
        self.pending = []
