"""The memory index's vectors: one ChromaDB collection per agent (cosine space), holding only
ids and embeddings; text and metadata live in the catalog beside it.

It talks to ChromaDB's Rust core (`chromadb_rust_bindings`, what chromadb's own local client
wraps) because importing the Python client costs about a second of every cold search and
the core 25 ms. Should a chromadb release change the core's interface, the public client
takes over (`_ClientCore`): slower to start, same files, same answers.
"""

from __future__ import annotations

import resource
from pathlib import Path
from typing import Any, Sequence

PREFIX = "aipass-memory-"
TENANT, DATABASE = "default_tenant", "default_database"
SPACE = {"hnsw:space": "cosine"}


def collection_name(agent: str) -> str:
    return PREFIX + agent


class _RustCore:
    """chromadb's Rust core, called as chromadb.api.rust.RustBindingsAPI calls it."""

    def __init__(self, folder: Path) -> None:
        import chromadb_rust_bindings as rb  # deferred: only search and indexing open the vector store

        config = rb.SqliteDBConfig(hash_type=rb.MigrationHash.MD5, migration_mode=rb.MigrationMode.Apply,
                                   url=str(folder / "chroma.sqlite3"))
        # as chromadb sizes it: each HNSW index keeps five files open
        cache = resource.getrlimit(resource.RLIMIT_NOFILE)[0] // 5
        self.core = rb.Bindings(allow_reset=False, sqlite_db_config=config, persist_path=str(folder),
                                hnsw_cache_size=cache)

    def names(self) -> list[str]:
        return [c.name for c in self.core.list_collections(None, None, TENANT, DATABASE)]

    def open(self, name: str, create: bool) -> str | None:
        if not create and name not in self.names():
            return None
        return str(self.core.create_collection(name, None, None, SPACE, True, TENANT, DATABASE).id)

    def upsert(self, cid: str, ids: list[str], vectors: Sequence[Any]) -> None:
        self.core.upsert(cid, ids, list(vectors), None, None, None, TENANT, DATABASE)

    def delete(self, cid: str, ids: list[str]) -> None:
        self.core.delete(cid, ids, None, None, None, TENANT, DATABASE)

    def vectors(self, cid: str, ids: list[str]) -> dict[str, Any]:
        got = self.core.get(cid, ids, None, None, 0, None, ["embeddings"], TENANT, DATABASE)
        return dict(zip(got.ids, got.embeddings))

    def query(self, cid: str, vectors: list[Any], n: int) -> list[list[tuple[str, float]]]:
        found = self.core.query(cid, None, vectors, n, None, None, ["distances"], TENANT, DATABASE)
        return [list(zip(ids, distances)) for ids, distances in zip(found.ids, found.distances)]


class _ClientCore:
    """The same operations through chromadb's public client: the fallback."""

    def __init__(self, folder: Path) -> None:
        import chromadb  # deferred: ~1 s; only when the Rust core cannot be used
        from chromadb.api.shared_system_client import SharedSystemClient  # deferred: as above
        from chromadb.config import Settings  # deferred: as above

        if not (folder / "chroma.sqlite3").exists():
            # chromadb keeps one client per path for the life of the process; after the
            # folder was deleted (a rebuild, or by hand) that client points at nothing
            SharedSystemClient.clear_system_cache()
        self.client = chromadb.PersistentClient(path=str(folder), settings=Settings(anonymized_telemetry=False))
        self._open: dict[str, Any] = {}

    def names(self) -> list[str]:
        return [c.name for c in self.client.list_collections()]

    def open(self, name: str, create: bool) -> str | None:
        if not create and name not in self.names():
            return None
        self._open[name] = self.client.get_or_create_collection(name, embedding_function=None, metadata=SPACE)
        return name

    def upsert(self, cid: str, ids: list[str], vectors: Sequence[Any]) -> None:
        self._open[cid].upsert(ids=ids, embeddings=list(vectors))

    def delete(self, cid: str, ids: list[str]) -> None:
        self._open[cid].delete(ids=ids)

    def vectors(self, cid: str, ids: list[str]) -> dict[str, Any]:
        got = self._open[cid].get(ids=ids, include=["embeddings"])
        return dict(zip(got["ids"], got["embeddings"]))

    def query(self, cid: str, vectors: list[Any], n: int) -> list[list[tuple[str, float]]]:
        found = self._open[cid].query(query_embeddings=vectors, n_results=n, include=["distances"])
        return [list(zip(ids, distances)) for ids, distances in zip(found["ids"], found["distances"])]


def _core(folder: Path, public_client: bool):
    if not public_client:
        try:
            return _RustCore(folder)
        except (ImportError, AttributeError, TypeError):
            pass  # another chromadb release: its public client knows its own core
    return _ClientCore(folder)


class VectorStore:
    """Embeddings by entry key, per agent; similarity is 1 - cosine distance."""

    def __init__(self, folder: Path, *, public_client: bool = False) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.core = _core(folder, public_client)
        self._ids: dict[str, str | None] = {}

    def _collection(self, agent: str, create: bool = False) -> str | None:
        cid = self._ids.get(agent)
        if cid is None:
            cid = self.core.open(collection_name(agent), create)
            self._ids[agent] = cid
        return cid

    def agents(self) -> list[str]:
        return sorted(n[len(PREFIX):] for n in self.core.names() if n.startswith(PREFIX))

    def upsert(self, agent: str, keys: list[str], vectors: Sequence[Any]) -> None:
        if keys:
            self.core.upsert(self._collection(agent, create=True), keys, vectors)

    def delete(self, agent: str, keys: list[str]) -> None:
        cid = self._collection(agent)
        if cid is not None and keys:
            self.core.delete(cid, keys)

    def vectors(self, agent: str, keys: list[str]) -> dict[str, Any]:
        cid = self._collection(agent)
        return self.core.vectors(cid, keys) if cid is not None and keys else {}

    def query(self, agent: str, vectors: list[Any], n: int) -> list[list[tuple[str, float]]]:
        """For each of VECTORS, (key, similarity) of AGENT's N nearest entries, nearest first
        (one call for all: the collection is opened and searched once)."""
        cid = self._collection(agent)
        if cid is None:
            return [[] for _ in vectors]
        return [[(key, 1.0 - distance) for key, distance in found] for found in self.core.query(cid, vectors, n)]
