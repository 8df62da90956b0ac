"""Searching memory: sync the index with the files, then ask it."""

from __future__ import annotations

from aipass_git.core.repo import AGENTS_DIR, Repo
from aipass_git.memory.index import Hit, Progress, open_index


def search(repo: Repo, query: str, agents: list[str] | None, k: int = 5,
           progress: Progress | None = None) -> tuple[list[Hit], str]:
    """Ranked entries for QUERY (of AGENTS, or everyone), and the backend that answered."""
    index = open_index(repo)
    index.sync(progress)
    return index.search(query, agents, k), index.kind


def reindex(repo: Repo, progress: Progress | None = None) -> tuple[dict[str, int], str]:
    index = open_index(repo)
    return index.rebuild(progress), index.kind


def related(repo: Repo, agent: str, text: str, k: int = 5) -> list[str]:
    """Archived entries of AGENT most related to TEXT, for the wake prompt (never fails)."""
    if not any((repo.root / AGENTS_DIR / agent / "archive").glob("*.jsonl")):
        return []  # nothing archived yet: no reason to load the index and the model
    try:
        hits, _ = search(repo, text, [agent], k * 3)
    except Exception:  # noqa: BLE001 - a prompt without related memories beats no wake
        return []
    archived = [h for h in hits if "/archive/" in h.source][:k]
    return [f"{h.created[:10]} ({h.section}): {h.text}" for h in archived]
