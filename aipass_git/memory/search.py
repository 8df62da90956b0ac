"""Searching memory: sync the index with the files, then ask it. The CLI and the wake
prompt's related memories go through here, so both rank the same way."""

from __future__ import annotations

from aipass_git.core.repo import AGENTS_DIR, Repo
from aipass_git.memory.index import Hit, MemoryIndex, Progress
from aipass_git.memory.served import ask


def search(repo: Repo, query: str, agents: list[str] | None, k: int = 5, *, mode: str | None = None,
           progress: Progress | None = None, index: MemoryIndex | None = None) -> tuple[list[Hit], str]:
    """Ranked entries for QUERY (of AGENTS, or everyone), and the mode that ranked them
    (MODE, or hybrid when the memory extra is installed and lexical when not). INDEX: one
    kept open by the caller (the daemon), else one opened and closed here."""
    own = index is None
    index = MemoryIndex(repo) if index is None else index
    try:
        mode = index.check_mode(mode)  # refused before any indexing
        index.sync(progress)
        return index.search(query, agents, k, mode), mode
    finally:
        if own:
            index.close()


def reindex(repo: Repo, progress: Progress | None = None) -> tuple[dict[str, int], str]:
    index = MemoryIndex(repo)
    try:
        return index.rebuild(progress), index.backend
    finally:
        index.close()


def related(repo: Repo, agent: str, text: str, k: int = 5) -> list[str]:
    """Archived entries of AGENT most related to TEXT, for the wake prompt (never fails)."""
    if not any((repo.root / AGENTS_DIR / agent / "archive").glob("*.jsonl")):
        return []  # nothing archived yet: no reason to load the index and the model
    try:
        served = ask(repo, text, [agent], k * 3, None)  # the daemon has the model loaded already
        hits = served[0] if served is not None else [h.as_dict() for h in search(repo, text, [agent], k * 3)[0]]
    except Exception:  # noqa: BLE001 - a prompt without related memories beats no wake
        return []
    archived = [h for h in hits if "/archive/" in h["source"]][:k]
    return [f"{h['created'][:10]} ({h['section']}): {h['text']}" for h in archived]
