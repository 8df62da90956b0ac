"""Working memory: `.aipass/agents/<name>/memory.json`, bounded on every write.

Caps come from the config (entries per section, characters per file, characters per
entry). Whatever a write pushes over a cap moves, unchanged and oldest first, to
`archive/YYYY-MM.jsonl` beside it, in the same commit: nothing is ever dropped.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aipass_git.core import clock, ids, schemas
from aipass_git.core.canonical import dumps, encode
from aipass_git.core.config import Config
from aipass_git.core.documents import json_lines, load_json, require_equal
from aipass_git.core.errors import AipassError, RefusedError, ValidationError
from aipass_git.core.files import read as read_doc
from aipass_git.core.repo import AGENTS_DIR, Repo
from aipass_git.core.text import is_utf8, plural
from aipass_git.store.objects import Ident
from aipass_git.store.parsed_cache import ParsedCache
from aipass_git.store.worktree_commit import commit_files, worktree_lock

KINDS = {"learning": "learnings", "observation": "observations", "session": "sessions"}
DEFAULT_ENTRY_MAX_CHARS = 4000


@dataclass(frozen=True)
class Caps:
    entries: int
    chars: int
    entry_chars: int

    @classmethod
    def of(cls, config: Config) -> "Caps":
        limits = config.limits
        return cls(
            limits["memory_entries_per_section"],
            limits["memory_max_chars"],
            limits.get("memory_entry_max_chars", DEFAULT_ENTRY_MAX_CHARS),
        )


def memory_rel(agent: str) -> str:
    return f"{AGENTS_DIR}/{agent}/memory.json"


def archive_rel(agent: str, month: str | None = None) -> str:
    return f"{AGENTS_DIR}/{agent}/archive/{month or clock.utc_now()[:7]}.jsonl"


def parse(data: bytes, file: str, agent: str | None = None) -> dict[str, Any]:
    doc = load_json(data, file, schemas.MEMORY)
    if agent is not None:
        require_equal(doc, "agent", agent, file)
    return doc


def load(root: Path, agent: str) -> dict[str, Any]:
    rel = memory_rel(agent)
    data = read_doc(root, rel)
    if data is None:
        raise RefusedError(f"{rel} is missing", f"restore it with: git checkout -- {rel}")
    return parse(data, rel, agent)


def check_many(repo: Repo, agents: list[str]) -> dict[str, AipassError]:
    """Agent -> why its memory.json cannot be read, for those of AGENTS whose file is bad.
    A file unchanged (same stat) since it last read well is not parsed again (doctor looks
    at a thousand of them)."""
    cache = ParsedCache(repo, "memory-checked")
    bad: dict[str, AipassError] = {}
    for agent in agents:
        rel = memory_rel(agent)
        try:
            st = os.stat(repo.root / rel)
            stamp = f"{st.st_size} {st.st_mtime_ns} {st.st_ino}"
        except OSError:
            stamp = None
        if stamp is not None and cache.get(rel, stamp) is not None:
            continue
        try:
            load(repo.root, agent)
        except AipassError as exc:
            bad[agent] = exc
            continue
        if stamp is not None:
            cache.put(rel, stamp, {})
    cache.save()
    return bad


def new_entry(text: str, caps: Caps, *, commit: str | None = None, paths: list[str] | None = None) -> dict[str, Any]:
    text = text.strip()
    if not text:
        raise RefusedError("the memory entry is empty", "say what was learned or observed")
    if not is_utf8(text):
        raise RefusedError("the memory entry is not valid UTF-8 text", "give text, not binary data")
    if len(text) > caps.entry_chars:
        raise RefusedError(
            f"the memory entry is {len(text)} characters (at most {caps.entry_chars})",
            "keep one entry to one point; split it, or raise limits.memory_entry_max_chars",
        )
    entry: dict[str, Any] = {"id": ids.new_id(), "created": clock.utc_now(), "text": text}
    if commit:
        entry["commit"] = commit
    if paths:
        entry["paths"] = list(paths)
    return entry


def apply_caps(doc: dict[str, Any], caps: Caps) -> list[dict[str, Any]]:
    """Move entries over the caps out of DOC, oldest first; returns archive records."""
    moved: list[dict[str, Any]] = []
    now = clock.utc_now()
    for section in schemas.MEMORY_SECTIONS:
        entries = doc[section]
        while len(entries) > caps.entries:
            moved.append({"archived": now, "section": section, "entry": entries.pop(0)})
    while len(dumps(doc)) > caps.chars:
        candidates = [(doc[s][0]["created"], doc[s][0]["id"], s) for s in schemas.MEMORY_SECTIONS if doc[s]]
        if not candidates:
            break
        _, _, section = min(candidates)
        moved.append({"archived": now, "section": section, "entry": doc[section].pop(0)})
    return moved


def archive_bytes(records: list[dict[str, Any]]) -> bytes:
    return b"".join(
        json.dumps(r, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8") + b"\n" for r in records
    )


def read_archive(data: bytes, file: str, first: int = 1) -> list[dict[str, Any]]:
    """Archive records of one file (DATA from its line FIRST on); a line that is not a
    record names the file and line."""
    hint = "archives are append-only: restore the file with git checkout"
    records = []
    for number, record in json_lines(data, file, hint, first):
        if not isinstance(record, dict) or not isinstance(record.get("entry"), dict) or "id" not in record["entry"]:
            raise ValidationError(file, None, f"line {number}: not an archive record", hint)
        records.append(record)
    return records


def plan_write(root: Path, agent: str, doc: dict[str, Any], caps: Caps) -> tuple[dict[str, bytes], list[dict[str, Any]]]:
    """Files to commit for DOC after applying the caps: memory.json and any archive append."""
    moved = apply_caps(doc, caps)
    files = {memory_rel(agent): encode(doc)}
    if moved:
        rel = archive_rel(agent)
        existing = read_doc(root, rel) or b""
        if existing and not existing.endswith(b"\n"):
            existing += b"\n"
        files[rel] = existing + archive_bytes(moved)
    return files, moved


@dataclass(frozen=True)
class Note:
    """One entry to record: KIND (learning, observation, session) and TEXT, with the commit
    and paths a session entry points at."""
    kind: str
    text: str
    commit: str | None = None
    paths: list[str] | None = None


def record(repo: Repo, config: Config, agent: str, kind: str, text: str, *, message_by: str,
           commit: str | None = None, paths: list[str] | None = None,
           allowed_secrets: list[str] | None = None, author: Ident | None = None) -> tuple[dict[str, Any], str | None, int]:
    """Add one entry to AGENT's working memory in REPO's worktree and commit it there (as
    AUTHOR, when given: the supervisor commits an agent's session as the agent).
    ALLOWED_SECRETS (let through by the user) are recorded in the commit message.

    Returns (entry, new commit, number of entries archived by the caps).
    """
    entries, new_commit, archived = record_many(repo, config, agent, [Note(kind, text, commit, paths)],
                                                message_by=message_by, allowed_secrets=allowed_secrets, author=author)
    return entries[0], new_commit, archived


def record_many(repo: Repo, config: Config, agent: str, notes: list[Note], *, message_by: str,
                allowed_secrets: list[str] | None = None,
                author: Ident | None = None) -> tuple[list[dict[str, Any]], str | None, int]:
    """Add NOTES to AGENT's working memory in one commit: every note is checked (kind, empty,
    length) before anything is written, the caps are applied once, and the index sees one
    change. Returns (entries in the order of NOTES, new commit, entries archived by the caps)."""
    if not notes:
        raise RefusedError("no memory entries to record", "give at least one entry")
    caps = Caps.of(config)
    entries = []
    for number, note in enumerate(notes, 1):
        where = f"entry {number}: " if len(notes) > 1 else ""
        if note.kind not in KINDS:
            raise RefusedError(f"{where}unknown memory kind {note.kind!r}", f"one of: {', '.join(KINDS)}")
        try:
            entries.append(new_entry(note.text, caps, commit=note.commit, paths=note.paths))
        except RefusedError as exc:
            raise RefusedError(where + exc.message, exc.hint) from None
    with worktree_lock(repo):
        doc = load(repo.root, agent)
        for note, entry in zip(notes, entries):
            doc[KINDS[note.kind]].append(entry)
        files, moved = plan_write(repo.root, agent, doc, caps)
        kinds = sorted({note.kind for note in notes})
        if len(notes) == 1:
            subject = f"{notes[0].kind}: {_summary(entries[0])}"
        else:
            subject = f"{plural(len(notes), 'entry', 'entries')} ({', '.join(kinds)})"
        message = (
            f"aipass: {agent} memory: {subject}\n\n"
            + (_listing(entries) if len(notes) > 1 else "")
            + (f"Archived: {plural(len(moved), 'older entry', 'older entries')}\n\n" if moved else "")
            + f"Aipass-Event: memory-{kinds[0] if len(kinds) == 1 else 'batch'}\nAipass-Agent: {agent}\n"
            + f"Aipass-By: {message_by}\n"
            + (f"Aipass-Allowed-Secret: {', '.join(allowed_secrets)}\n" if allowed_secrets else "")
        )
        new_commit = commit_files(repo, files, message, author=author)
    return entries, new_commit, len(moved)


LISTED = 20  # entries a batch's commit message lists by their first words


def _summary(entry: dict[str, Any]) -> str:
    return " ".join(entry["text"].split())[:72]


def _listing(entries: list[dict[str, Any]]) -> str:
    lines = [f"- {_summary(e)}" for e in entries[:LISTED]]
    if len(entries) > LISTED:
        lines.append(f"- ... and {len(entries) - LISTED} more")
    return "\n".join(lines) + "\n\n"


def archive_record(repo: Repo, config: Config, agent: str, section: str, text: str, *, message_by: str,
                   author: Ident | None = None) -> tuple[dict[str, Any], str | None]:
    """Append one entry straight to AGENT's archive under SECTION and commit it: history
    that `memory search` should find but that has no place in the working memory a
    prompt carries (a closed plan's summary). Returns (entry, new commit)."""
    entries, commit = archive_many(repo, config, agent, section, [text], message_by=message_by, author=author)
    return entries[0], commit


def archive_many(repo: Repo, config: Config, agent: str, section: str, texts: list[str], *, message_by: str,
                 author: Ident | None = None) -> tuple[list[dict[str, Any]], str | None]:
    """archive_record for several TEXTS: one commit, every text checked before it."""
    if not texts:
        raise RefusedError("no memory entries to archive", "give at least one entry")
    caps = Caps.of(config)
    entries = [new_entry(text, caps) for text in texts]
    with worktree_lock(repo):
        load(repo.root, agent)  # the agent's memory must exist and be sound before its archive grows
        rel = archive_rel(agent)
        existing = read_doc(repo.root, rel) or b""
        if existing and not existing.endswith(b"\n"):
            existing += b"\n"
        records = [{"archived": e["created"], "section": section, "entry": e} for e in entries]
        subject = _summary(entries[0]) if len(entries) == 1 else plural(len(entries), "entry", "entries")
        message = (f"aipass: {agent} memory: {section}: {subject}\n\n"
                   + (_listing(entries) if len(entries) > 1 else "")
                   + f"Aipass-Event: memory-archive\nAipass-Agent: {agent}\nAipass-By: {message_by}\n")
        new_commit = commit_files(repo, {rel: existing + archive_bytes(records)}, message, author=author)
    return entries, new_commit
