"""Checking event commits against the allowed signers, in-process and cached.

The allowed signers are read from the base branch (never the work tree, where an agent
could add its own key): `<base>:.aipass/allowed_signers`, git's format, written by
agents/trust.py. A commit verifies when its `gpgsig` is a valid "git" SSH signature by a
key listed for the committer's email and valid at the committer's time.

What verified is remembered in the runtime folder as the commit and the key that made its
signature, whatever allowed-signers file was read then: a later check, under any file,
asks only whether that key is still trusted for that committer at that time. So each
signature is checked once (~130 us), and adding an agent or rotating a key, which changes
the file, does not send every reader back over every signature of the repository.
"""

from __future__ import annotations

import calendar
import functools
import hashlib
import os
import re
from dataclasses import dataclass, field
from functools import cached_property

from aipass_git.core import git
from aipass_git.store import signing
from aipass_git.store.events import EventStore

SIGNERS_PATH = ".aipass/allowed_signers"
_OPTION = re.compile(r'(valid-after|valid-before)="?(\d{8,14})Z?"?')
_EVENT = re.compile(rb"^Aipass-Event: (\S+)$", re.M)


PARALLEL_FROM = 512  # signatures in a batch before it is worth threads
MAX_WORKERS = 8
CACHE = "signed"  # in <runtime dir>/trust/: a line per verified commit, "<commit> <key id>"


@functools.lru_cache(maxsize=None)
def key_id(key_blob: bytes) -> str:
    """A key's short name in the cache (asked for every remembered commit: computed once a key)."""
    return hashlib.sha256(key_blob).hexdigest()[:32]


@dataclass(frozen=True)
class Verdict:
    ok: bool
    principal: str  # the committer's email: who the commit says signed it
    reason: str = ""  # why not, when not ok


def _epoch(stamp: str) -> int:
    # sliced, not strptime: a roster of a thousand agents has a thousand of these
    s = (stamp + "000000")[:14]
    return calendar.timegm((int(s[:4]), int(s[4:6]), int(s[6:8]), int(s[8:10]), int(s[10:12]), int(s[12:14]), 0, 0, 0))


@dataclass
class Roster:
    """Principal -> [(key blob, valid after, valid before)] of an allowed-signers file.

    Lines are only split when the file is read; a principal's keys are decoded the first
    time one of its signatures is checked (a thread reads a few senders of a thousand)."""

    blob_id: str | None
    lines: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # principal -> (options, key line)
    decoded: dict[str, list[tuple[bytes, int, int | None]]] = field(default_factory=dict)

    @classmethod
    def parse(cls, data: bytes, blob_id: str | None) -> "Roster":
        roster = cls(blob_id)
        for line in data.decode("utf-8", "replace").splitlines():
            parts = line.split()
            if len(parts) < 3 or line.lstrip().startswith("#"):
                continue
            principal, rest = parts[0], parts[1:]
            options = "" if rest[0].startswith("ssh-") else rest.pop(0)
            if len(rest) >= 2:
                roster.lines.setdefault(principal, []).append((options, f"{rest[0]} {rest[1]}"))
        return roster

    def keys(self, principal: str) -> list[tuple[bytes, int, int | None]]:
        found = self.decoded.get(principal)
        if found is None:
            found = []
            for options, key_line in self.lines.get(principal, []):
                try:
                    blob = signing.key_blob(key_line)
                except Exception:  # noqa: BLE001 - a bad line trusts nobody; the audit names it
                    continue
                after, before = 0, None
                for name, value in _OPTION.findall(options):
                    if name == "valid-after":
                        after = _epoch(value)
                    else:
                        before = _epoch(value)
                found.append((blob, after, before))
            self.decoded[principal] = found
        return found

    def keys_at(self, principal: str, when: int) -> list[bytes]:
        return [blob for blob, after, before in self.keys(principal) if after <= when and (before is None or when < before)]

    def trusts(self, principal: str, when: int, key: str) -> bool:
        """Whether the key of id KEY (key_id) is trusted for PRINCIPAL at WHEN."""
        return any(key_id(blob) == key for blob in self.keys_at(principal, when))

    @cached_property
    def humans(self) -> set[str]:
        """Principals that are people (asked once per checked event: kept, not rebuilt)."""
        return {p for p in self.lines if not p.endswith("@aipass.invalid")}


def roster_at(store: EventStore, base_branch: str) -> Roster:
    """The allowed signers on the base branch (empty before the repository had any)."""
    name = f"refs/heads/{base_branch}:{SIGNERS_PATH}"
    oid = store.reader.resolve(name)
    if oid is None:
        return Roster(None)
    return Roster.parse(store.blob(oid), oid)


def committer_of(raw: bytes) -> tuple[str, int]:
    """(email, time) of a commit object's committer line."""
    head = raw.split(b"\n\n", 1)[0]
    for line in head.split(b"\n"):
        if line.startswith(b"committer "):
            m = re.search(rb"<([^>]*)> (\d+)", line)
            if m:
                return m.group(1).decode("utf-8", "replace"), int(m.group(2))
    return "", 0


class Verifier:
    def __init__(self, store: EventStore, roster: Roster) -> None:
        self.store = store
        self.roster = roster
        self._cache_path = store.repo.runtime_dir / "trust" / CACHE
        self._signed: dict[str, str] | None = None  # commit -> id of the key that signed it
        self._new: list[str] = []

    def _known(self) -> dict[str, str]:
        if self._signed is None:
            self._signed = {}
            try:
                lines = self._cache_path.read_text(encoding="ascii").splitlines()
            except (FileNotFoundError, UnicodeDecodeError):
                lines = []
            # a line cut short by a crash is left out: that commit is checked again
            self._signed = dict(parts for line in lines if len(parts := line.split()) == 2)
        return self._signed

    def check(self, commit: str, raw: bytes | None = None) -> Verdict:
        """Whether COMMIT (its object content RAW, when read already) is signed by its committer."""
        if raw is None:
            raw = self.store.reader.read(commit)[1]
        email, when = committer_of(raw)
        key = self._known().get(commit)
        if key is not None and self.roster.trusts(email, when, key):
            return Verdict(True, email)
        payload, armored = signing.split_gpgsig(raw)
        if armored is None:
            return Verdict(False, email, "unsigned")
        allowed = self.roster.keys_at(email, when)
        if not allowed:
            return Verdict(False, email, f"no key of {email} is trusted at that time")
        signer = signing.verify(armored, payload, allowed)
        if signer is None:
            return Verdict(False, email, "the signature does not match")
        self._known()[commit] = key_id(signer)
        self._new.append(f"{commit} {key_id(signer)}")
        return Verdict(True, email)

    def check_many(self, items: list[tuple[str, bytes]]) -> list[Verdict]:
        """`check` of many (commit, raw) pairs. A big batch (a first audit after a fill) is
        checked on every core: the Ed25519 check releases the GIL (~1.8x on two)."""
        workers = min(os.cpu_count() or 1, MAX_WORKERS)
        if len(items) < PARALLEL_FROM or workers < 2:
            return [self.check(commit, raw) for commit, raw in items]
        from concurrent.futures import ThreadPoolExecutor  # deferred: the hooks import this module, seldom this branch

        self._known()  # read once, before the threads share it (setting a dict item is atomic)
        size = -(-len(items) // workers)
        with ThreadPoolExecutor(workers) as pool:
            parts = pool.map(lambda part: [self.check(commit, raw) for commit, raw in part],
                             [items[i:i + size] for i in range(0, len(items), size)])
            return [verdict for part in parts for verdict in part]

    def save(self) -> None:
        """Remember what verified in this process for the next ones (append-only: two
        processes appending at once lose nothing a later check cannot redo)."""
        if self._new:
            self._cache_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self._cache_path, "a", encoding="ascii") as out:
                out.write("\n".join(self._new) + "\n")
            self._new = []


def history(store: EventStore, ref: str, roster: Roster) -> list[tuple[str, bytes, Verdict]]:
    """(commit, its raw text, its verdict) of every event of REF, oldest first: one walk,
    one batch of reads, each signature checked once (and remembered)."""
    commits = git.output(["rev-list", "--reverse", ref], store.repo.root).split()
    items = [(commit, raw) for commit, (_, raw) in zip(commits, store.reader.read_many(commits))]
    verifier = Verifier(store, roster)
    try:
        verdicts = verifier.check_many(items)
    finally:
        verifier.save()
    return [(commit, raw, verdict) for (commit, raw), verdict in zip(items, verdicts)]


def event_of(raw: bytes) -> str | None:
    """The Aipass-Event trailer of an event commit's raw text."""
    found = _EVENT.search(raw)
    return found.group(1).decode("utf-8", "replace") if found else None


def unproven_history(store: EventStore, ref: str, roster: Roster) -> tuple[str, Verdict] | None:
    """The first commit of REF's history (oldest first) whose signature does not verify,
    with why; None when every event is signed by a trusted key. Entities with short
    histories (PRs, plans) are checked whole before anything acts on them."""
    return next(((commit, verdict) for commit, _, verdict in history(store, ref, roster) if not verdict.ok), None)


def unproven_refs(store: EventStore, roster: Roster, namespaces: list[str]) -> dict[str, tuple[str, Verdict]]:
    """Ref -> (its oldest commit whose signature does not verify, with why) of the refs
    under NAMESPACES (e.g. "refs/aipass/prs/") whose history holds one; one walk of them all
    and one batch of reads, each signature checked once (the cache remembers the good)."""
    walked = git.log(store.repo.root, ["--reverse", "--source", *[f"--glob={ns}*" for ns in namespaces]], ["%H", "%S"])
    commits = [commit for commit, _ in walked]
    verifier = Verifier(store, roster)
    try:
        verdicts = verifier.check_many([(c, raw) for c, (_, raw) in zip(commits, store.reader.read_many(commits))])
    finally:
        verifier.save()
    found: dict[str, tuple[str, Verdict]] = {}
    for (commit, ref), verdict in zip(walked, verdicts):
        if not verdict.ok:
            found.setdefault(ref, (commit, verdict))
    return found
