"""The memory verbs of the command line and the Python API: whose memory a command means,
adding an entry (with who may write it), reading it at a revision.

    from aipass_git.agents.session import Session
    from aipass_git.memory import verbs
    verbs.add(Session.open(repo), "the parser needs LC_ALL=C")
    verbs.add_many(Session.open(repo), [("the parser needs LC_ALL=C", "learning"),
                                        ("tests take 3 s", "observation")])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aipass_git.agents import policy
from aipass_git.agents.session import Session
from aipass_git.core import git, secrets
from aipass_git.core.documents import json_lines
from aipass_git.core.errors import RefusedError
from aipass_git.core.text import is_utf8
from aipass_git.memory import working

ADDABLE = ("learning", "observation")  # sessions are recorded by the supervisor


@dataclass
class Added:
    agent: str
    entry: dict[str, Any]
    commit: str | None
    archived: int
    secrets: list[str]  # kinds of secret the text seems to hold, let through with --allow-secret


def whose(session: Session, raw: str | None, *, writing: bool, example: str) -> str:
    """The agent whose memory a command means: RAW, or the speaker's own. EXAMPLE is the
    command line that names one, for the hint."""
    speaker = session.speaker
    if raw is None:
        if speaker.is_human:
            raise RefusedError("you are the human here: say whose memory", f"name the agent: {example}")
        return speaker.name
    owner = session.registry.get(raw).name
    if writing:
        policy.require_may_write_memory(speaker.name, owner, session.orchestrator)
    return owner


def add(session: Session, text: str, *, kind: str = "learning", agent: str | None = None,
        allow_secret: bool = False) -> Added:
    """Record TEXT in the memory of AGENT (default: the speaker) and commit it on the
    current branch. Text that looks like it holds a secret is refused unless ALLOW_SECRET
    (then the commit records it): memory and its commit subject stay in history."""
    batch = add_many(session, [(text, kind)], agent=agent, allow_secret=allow_secret)
    return Added(batch.agent, batch.entries[0], batch.commit, batch.archived, batch.secrets)


@dataclass
class AddedMany:
    agent: str
    entries: list[dict[str, Any]]  # in the order given
    commit: str | None
    archived: int
    secrets: list[str]


def add_many(session: Session, items: list[tuple[str, str]], *, agent: str | None = None,
             allow_secret: bool = False) -> AddedMany:
    """Record ITEMS, (text, kind) pairs, in the memory of AGENT (default: the speaker) in one
    commit. Every entry is checked (kind, length, secrets) before anything is written: one
    bad entry refuses the batch, naming its number."""
    if not items:
        raise RefusedError("no memory entries to add", "give TEXT arguments or --from FILE of JSON lines")
    many = len(items) > 1
    for number, (_, kind) in enumerate(items, 1):
        if kind not in ADDABLE:
            where = f"entry {number}: " if many else ""
            raise RefusedError(f"{where}--kind: {kind!r} is not learning or observation",
                               "sessions are recorded by the supervisor")
    owner = whose(session, agent, writing=True, example='git aipass memory add --agent @NAME "TEXT"')
    allowed: set[str] = set()
    for number, (text, _) in enumerate(items, 1):
        allowed.update(secrets.check(f"entry {number}" if many else "the entry", text, allow=allow_secret))
    found = sorted(allowed)
    entries, commit, archived = working.record_many(
        session.repo, session.config, owner, [working.Note(kind, text) for text, kind in items],
        message_by=session.speaker.name, allowed_secrets=found)
    return AddedMany(owner, entries, commit, archived, found)


def read_batch(data: bytes, file: str, kind: str = "learning") -> list[tuple[str, str]]:
    """(text, kind) pairs from JSON lines, each {"text": ..., "kind": ...} (KIND when it
    has none); a line that is not one names FILE and the line."""
    items = []
    hint = 'one JSON object a line: {"text": "...", "kind": "learning"}'
    for number, doc in json_lines(data, file, hint):
        if not isinstance(doc, dict) or not isinstance(doc.get("text"), str):
            raise RefusedError(f"{file}: line {number}: no \"text\" string", hint)
        if not isinstance(doc.get("kind", kind), str) or set(doc) - {"text", "kind"}:
            raise RefusedError(f"{file}: line {number}: only \"text\" and \"kind\" (a string) are known", hint)
        items.append((doc["text"], doc.get("kind", kind)))
    if not items:
        raise RefusedError(f"{file} holds no entries", hint)
    return items


def show(session: Session, agent: str | None = None, *, at: str | None = None) -> tuple[str, dict[str, Any]]:
    """(owner, memory document) of AGENT, as in the work tree or as committed at AT."""
    owner = whose(session, agent, writing=False, example="git aipass memory show @NAME")
    if at is None:
        return owner, working.load(session.repo.root, owner)
    rel = working.memory_rel(owner)
    data = git.blob_at(session.repo.root, at, rel)
    if data is None:
        raise RefusedError(f"no {rel} at {at!r}", "give a branch, tag or commit where the agent exists")
    return owner, working.parse(data, f"{rel} at {at}", owner)


def check_query(query: str) -> str:
    """QUERY, refused when it is not text (an undecodable byte on the command line)."""
    if not is_utf8(query):
        raise RefusedError("the query is not valid UTF-8 text", "give the words to look for")
    return query


def scope(session: Session, agent: str | None, everyone: bool) -> list[str] | None:
    """Whose memory a search covers: None for everyone's (the human's default)."""
    if everyone or (agent is None and session.speaker.is_human):
        return None
    return [whose(session, agent, writing=False, example="git aipass memory search QUERY @NAME")]
