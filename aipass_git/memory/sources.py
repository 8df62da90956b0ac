"""What the memory index is built from: every agent's memory.json and archive files in a
worktree, as entries with their agent, section, date and source file."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from aipass_git.core import schemas
from aipass_git.core.repo import AGENTS_DIR, Repo
from aipass_git.memory import working


@dataclass(frozen=True)
class Entry:
    key: str  # unique in the index: "<source>#<entry id>"
    agent: str
    section: str
    created: str
    source: str
    text: str


def source_files(repo: Repo) -> dict[str, Path]:
    """Relative path -> file, for every memory.json and archive file of every agent; a
    symbolic link is left out, never followed (the audit reports it)."""
    files: dict[str, Path] = {}
    agents = repo.root / AGENTS_DIR
    if not agents.is_dir() or any(p.is_symlink() for p in (repo.root / AGENTS_DIR, agents.parent)):
        return files
    for folder in sorted(p for p in agents.iterdir() if p.is_dir() and not p.is_symlink()):
        memory = folder / "memory.json"
        if memory.is_file() and not memory.is_symlink():
            files[f"{AGENTS_DIR}/{folder.name}/memory.json"] = memory
        archives = folder / "archive"
        for archive in [] if archives.is_symlink() else sorted(archives.glob("*.jsonl")):
            if not archive.is_symlink():
                files[f"{AGENTS_DIR}/{folder.name}/archive/{archive.name}"] = archive
    return files


@dataclass(frozen=True)
class Tail:
    """What was appended to an archive file since it was indexed: its bytes from a line's
    start on, and that line's number."""
    data: bytes
    first_line: int


def is_working(rel: str) -> bool:
    """Whether source REL is an agent's working memory (memory.json), not an archive."""
    return rel.endswith("/memory.json")


def read_stamp(path: Path, size: int = 0, sha256: str = "") -> tuple[str, int, Tail | None]:
    """(sha256, size) of PATH as read now, and what was appended when it still begins with
    the SIZE bytes whose sha256 was SHA256, cut at a line's end (else None), from one read.
    Archives are append-only: a month's file grows by a few lines at a time, and reading
    only those keeps the index's work to what is new however big the file."""
    data = path.read_bytes()
    digest = hashlib.sha256(memoryview(data)[:size])
    grew = 0 < size < len(data) and data[size - 1:size] == b"\n" and digest.hexdigest() == sha256
    digest.update(memoryview(data)[size:])
    tail = Tail(data[size:], data.count(b"\n", 0, size) + 1) if grew else None
    return digest.hexdigest(), len(data), tail


def entries_of(rel: str, path: Path, tail: Tail | None = None) -> Iterator[Entry]:
    """The entries of source REL; with TAIL, an archive's appended entries only."""
    agent = rel.split("/")[2]
    if is_working(rel):
        doc = working.parse(path.read_bytes(), rel, agent)
        for section in schemas.MEMORY_SHOWN:
            for e in doc[section]:
                yield Entry(f"{rel}#{e['id']}", agent, section, e["created"], rel, e["text"])
        return
    records = working.read_archive(tail.data, rel, tail.first_line) if tail else working.read_archive(path.read_bytes(), rel)
    seen: set[str] = set()
    for record in records:
        e = record["entry"]
        if e["id"] in seen:
            continue  # a line written twice (the audit reports it): one entry in the index
        seen.add(e["id"])
        yield Entry(f"{rel}#{e['id']}", agent, record.get("section", "?"), e.get("created", ""), rel, e.get("text", ""))
