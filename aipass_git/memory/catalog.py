"""The memory index's catalog: one SQLite file that says what is indexed, with an FTS5 table
over the same entries.

It is the index's source of truth: a vector the catalog does not list is never shown, so a
crash between the catalog's commit and the vector store's write costs at most a re-embed.
Tables: `files` (source file -> content hash and stat, for change detection), `entries`
(one row per memory entry, `embedded` once its vector is stored), `gone` (entries removed
whose vectors are still to delete, with their digests so a moved entry reuses its vector),
and `fts`, an external-content FTS5 table kept in step by triggers.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

from aipass_git.memory.lexical import common_bound, match_expression, names, naming, term_expression

LAYOUT = "2"  # bumped when the schema changes: an index of another layout is rebuilt
NAMED_MAX = 1000  # entries that name what a question names, at most: each name is in at most common_bound

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files(source TEXT PRIMARY KEY, sha256 TEXT NOT NULL, size INTEGER NOT NULL,
                                 mtime_ns INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS entries(id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, agent TEXT NOT NULL,
                                   section TEXT NOT NULL, created TEXT NOT NULL, source TEXT NOT NULL,
                                   text TEXT NOT NULL, digest TEXT NOT NULL, embedded INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS entries_source ON entries(source);
CREATE INDEX IF NOT EXISTS entries_digest ON entries(digest);
CREATE INDEX IF NOT EXISTS entries_pending ON entries(embedded) WHERE embedded = 0;
CREATE TABLE IF NOT EXISTS gone(key TEXT PRIMARY KEY, agent TEXT NOT NULL, digest TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS gone_digest ON gone(digest);
CREATE VIRTUAL TABLE IF NOT EXISTS fts USING fts5(text, content='entries', content_rowid='id',
                                                  tokenize='porter unicode61 remove_diacritics 2');
CREATE TRIGGER IF NOT EXISTS entries_added AFTER INSERT ON entries BEGIN
  INSERT INTO fts(rowid, text) VALUES (new.id, new.text);
END;
CREATE TRIGGER IF NOT EXISTS entries_removed AFTER DELETE ON entries BEGIN
  INSERT INTO fts(fts, rowid, text) VALUES ('delete', old.id, old.text);
END;
"""


@dataclass(frozen=True)
class Row:
    key: str
    agent: str
    section: str
    created: str
    source: str
    text: str
    digest: str


@dataclass(frozen=True)
class Stamp:
    sha256: str
    size: int
    mtime_ns: int


class Catalog:
    def __init__(self, path: Path) -> None:
        self.path = path
        # autocommit off (isolation_level=None would be on): each write is one transaction
        self.db = sqlite3.connect(path, timeout=30)
        # WAL: a search reads while a background sync writes
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")  # a cache: losing the last commit to a power cut costs a re-sync
        with self.db:
            self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    def layout(self) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = 'layout'").fetchone()
        return row[0] if row else None

    def set_layout(self) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('layout', ?)", (LAYOUT,))

    # -- change detection --------------------------------------------------------------------

    def stamps(self) -> dict[str, Stamp]:
        return {r[0]: Stamp(*r[1:]) for r in self.db.execute("SELECT source, sha256, size, mtime_ns FROM files")}

    def restamp(self, stamps: dict[str, Stamp]) -> None:
        """Record new stats of files whose content did not change (a checkout touched them)."""
        with self.db:
            self._put_stamps(stamps)

    def _put_stamps(self, stamps: dict[str, Stamp]) -> None:
        self.db.executemany("INSERT OR REPLACE INTO files(source, sha256, size, mtime_ns) VALUES (?, ?, ?, ?)",
                            [(s, st.sha256, st.size, st.mtime_ns) for s, st in stamps.items()])

    def digests_of(self, sources: Iterable[str]) -> dict[str, tuple[str, str, int]]:
        """key -> (digest, agent, embedded) of every entry indexed from SOURCES."""
        found: dict[str, tuple[str, str, int]] = {}
        for source in sources:
            for key, digest, agent, embedded in self.db.execute(
                    "SELECT key, digest, agent, embedded FROM entries WHERE source = ?", (source,)):
                found[key] = (digest, agent, embedded)
        return found

    def keys_among(self, keys: list[str]) -> set[str]:
        """Those of KEYS the catalog holds."""
        found: set[str] = set()
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            found.update(r[0] for r in self.db.execute(f"SELECT key FROM entries WHERE key IN ({','.join('?' * len(chunk))})", chunk))
        return found

    def replace(self, removed_keys: list[str], added: list[Row], stamps: dict[str, Stamp], dropped: list[str]) -> None:
        """One transaction: entries out and in, file stamps updated, DROPPED sources forgotten.
        Removed entries that had a vector go to `gone` until the vector store has dropped them."""
        with self.db:
            for start in range(0, len(removed_keys), 500):
                chunk = removed_keys[start:start + 500]
                marks = ",".join("?" * len(chunk))
                self.db.execute(f"INSERT OR REPLACE INTO gone(key, agent, digest) SELECT key, agent, digest FROM entries "
                                f"WHERE embedded = 1 AND key IN ({marks})", chunk)
                self.db.execute(f"DELETE FROM entries WHERE key IN ({marks})", chunk)
            self.db.executemany(
                "INSERT OR REPLACE INTO entries(key, agent, section, created, source, text, digest) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(r.key, r.agent, r.section, r.created, r.source, r.text, r.digest) for r in added])
            self.db.executemany("DELETE FROM files WHERE source = ?", [(s,) for s in dropped])
            self._put_stamps(stamps)

    # -- vectors to write and to drop --------------------------------------------------------

    def pending(self) -> list[Row]:
        return [Row(*r) for r in self.db.execute(
            "SELECT key, agent, section, created, source, text, digest FROM entries WHERE embedded = 0 ORDER BY id")]

    def vector_donors(self, digests: set[str]) -> dict[str, tuple[str, str]]:
        """digest -> (key, agent) of an entry, present or gone, whose stored vector has that text."""
        donors: dict[str, tuple[str, str]] = {}
        wanted = list(digests)
        for start in range(0, len(wanted), 500):
            chunk = wanted[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for digest, key, agent in self.db.execute(
                    f"SELECT digest, key, agent FROM gone WHERE digest IN ({marks}) "
                    f"UNION ALL SELECT digest, key, agent FROM entries WHERE embedded = 1 AND digest IN ({marks})",
                    chunk + chunk):
                donors.setdefault(digest, (key, agent))
        return donors

    def mark_embedded(self, keys: list[str]) -> None:
        with self.db:
            self.db.executemany("UPDATE entries SET embedded = 1 WHERE key = ?", [(k,) for k in keys])

    def gone(self) -> list[tuple[str, str]]:
        return list(self.db.execute("SELECT key, agent FROM gone"))

    def forget_gone(self, keys: list[str]) -> None:
        with self.db:
            self.db.executemany("DELETE FROM gone WHERE key = ?", [(k,) for k in keys])

    # -- reading -----------------------------------------------------------------------------

    def agents(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT DISTINCT agent FROM entries ORDER BY agent")]

    def count(self) -> int:
        return self.db.execute("SELECT count(*) FROM entries").fetchone()[0]

    def rows(self, keys: list[str]) -> dict[str, Row]:
        found: dict[str, Row] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            for r in self.db.execute(
                    "SELECT key, agent, section, created, source, text, digest FROM entries "
                    f"WHERE key IN ({','.join('?' * len(chunk))})", chunk):
                found[r[0]] = Row(*r)
        return found

    def lexical(self, query: str, agents: list[str] | None, n: int, *, all_common: bool = True) -> list[tuple[str, float]]:
        """(key, BM25 score, higher is better) of the N best entries for QUERY's words; when
        every word is common, by all of them, or (without ALL_COMMON) none."""
        rare = self._rare()
        return self._bm25(match_expression(query, rare, all_common=all_common), agents, n)

    def names(self, query: str, agents: list[str] | None) -> list[tuple[str, str, int]]:
        """(key, agent, how well it names them) of the entries that name what QUERY names
        (lexical.names, lexical.naming), names in more entries than common_bound left out:
        a name that many share names nothing. All of them, up to NAMED_MAX by BM25: the
        caller orders those that name alike by meaning."""
        rare = self._rare()
        wanted = {phrase: spelling for phrase, spelling in names(query).items() if rare is None or rare(phrase)}
        if not wanted:
            return []
        sql = "SELECT e.key, e.agent, e.text FROM fts JOIN entries e ON e.id = fts.rowid WHERE fts MATCH ?"
        args: list = [" OR ".join(term_expression(phrase) for phrase in wanted)]
        if agents is not None:
            sql += f" AND e.agent IN ({','.join('?' * len(agents))})"
            args += agents
        sql += " ORDER BY bm25(fts) LIMIT ?"
        args.append(NAMED_MAX)
        found = []
        for key, agent, text in self.db.execute(sql, args):
            score = sum(naming(text, phrase, spelling) for phrase, spelling in wanted.items())
            if score:  # FTS5 matched a stem ("caches" for "cache"): no name of it
                found.append((key, agent, score))
        return found

    def _rare(self) -> Callable[[str], bool] | None:
        """Whether a term is in at most common_bound entries; None while every term is."""
        entries = self.db.execute("SELECT max(id) FROM entries").fetchone()[0] or 0  # at least the count, and O(1)
        bound = common_bound(entries)
        if entries <= bound:
            return None

        def rare(term: str) -> bool:
            # counted only up to the bound: a common word would cost what its query would
            sql = "SELECT count(*) FROM (SELECT rowid FROM fts WHERE fts MATCH ? LIMIT ?)"
            return self.db.execute(sql, (term_expression(term), bound + 1)).fetchone()[0] <= bound

        return rare

    def _bm25(self, match: str, agents: list[str] | None, n: int) -> list[tuple[str, float]]:
        if not match:
            return []
        sql = "SELECT e.key, bm25(fts) FROM fts JOIN entries e ON e.id = fts.rowid WHERE fts MATCH ?"
        args: list = [match]
        if agents is not None:
            sql += f" AND e.agent IN ({','.join('?' * len(agents))})"
            args += agents
        sql += " ORDER BY bm25(fts) LIMIT ?"
        args.append(n)
        return [(key, -score) for key, score in self.db.execute(sql, args)]

    def all_rows(self) -> Iterator[Row]:
        yield from (Row(*r) for r in self.db.execute(
            "SELECT key, agent, section, created, source, text, digest FROM entries ORDER BY id"))
