"""Passports as last read, so that a command over a thousand agents does not parse and
validate a thousand files each time: `<common dir>/aipass/index/passports.sqlite`, one
row per passport file with the stat it had when it was read (and validated). A file whose
stat differs is read again; the cache is derived and may be deleted at any time (a file
SQLite cannot read is dropped and rebuilt). Worktrees have their own files, so rows are
keyed by path.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from aipass_git.core.repo import Repo

SCHEMA = "CREATE TABLE IF NOT EXISTS passports (path TEXT PRIMARY KEY, stamp TEXT NOT NULL, doc TEXT NOT NULL)"


class PassportCache:
    def __init__(self, repo: Repo) -> None:
        self.path = repo.runtime_dir / "index" / "passports.sqlite"
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

    def get(self, path: Path, stamp: str) -> dict[str, Any] | None:
        """The passport as read when its file had STAMP, or None."""
        if self.rows is None:
            db = self._open()
            try:
                self.rows = {p: (s, d) for p, s, d in db.execute("SELECT path, stamp, doc FROM passports")} if db else {}
            except sqlite3.DatabaseError:
                self.rows = {}
        found = self.rows.get(str(path))
        return json.loads(found[1]) if found is not None and found[0] == stamp else None

    def put(self, path: Path, stamp: str, doc: dict[str, Any]) -> None:
        self.pending.append((str(path), stamp, json.dumps(doc)))

    def save(self) -> None:
        db = self._open() if self.pending else None
        if db is None:
            return
        try:
            db.execute("BEGIN IMMEDIATE")
            db.executemany("INSERT OR REPLACE INTO passports VALUES (?, ?, ?)", self.pending)
            db.execute("COMMIT")
        except sqlite3.DatabaseError:
            pass  # another process holds it: only a cache
        self.pending = []
