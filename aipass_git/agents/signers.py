"""`git aipass key show/rotate/import`: the keys agents and humans sign with.

Only the human changes keys (a key is the authority to speak as someone); a rotation closes
the old public key (`until`: it still verifies what it signed before) and commits the new
one with the regenerated allowed-signers file, in one commit on the current branch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aipass_git.agents import trust
from aipass_git.agents.registry import Registry, agent_files
from aipass_git.core import clock, git, names
from aipass_git.core.canonical import encode
from aipass_git.core.errors import RefusedError
from aipass_git.core.names import HUMAN
from aipass_git.core.repo import Repo
from aipass_git.store import signing
from aipass_git.store.keyring import Keyring, own_ssh_key, own_ssh_key_path
from aipass_git.store.worktree_commit import commit_files


@dataclass
class Holder:
    """Whose keys: an agent, or the human of this clone."""

    name: str  # agent name, or "human"
    email: str  # the principal
    keys: list[dict[str, Any]]  # as committed


def holder(repo: Repo, raw: str | None) -> Holder:
    who = names.strip_at(raw or HUMAN)
    if who == HUMAN:
        _, email = git.user_ident(repo.root)
        keys = [doc for doc in trust.read_human_keys(repo).values() if doc["email"] == email]
        return Holder(HUMAN, email, sorted(keys, key=lambda k: k["from"]))
    agent = Registry(repo).get(who)
    return Holder(agent.name, trust.agent_email(agent.name), agent.passport.get("keys", []))


def show(repo: Repo, raw: str | None) -> dict[str, Any]:
    h = holder(repo, raw)
    keyring = Keyring(repo.root)
    private = keyring.get(h.email)
    path = keyring.path(h.email)
    if private is None and h.name == HUMAN:
        own = own_ssh_key(repo.root)  # what events are signed with (store/events.py)
        if own is not None:
            private, path = own, own_ssh_key_path(repo.root)
    current = " ".join(private.public_line.split()[:2]) if private else None
    return {
        "who": h.name, "principal": h.email,
        "keys": [{**k, "fingerprint": signing.fingerprint(k["key"]), "here": k["key"] == current} for k in h.keys],
        "private_key": str(path) if private and path else None,
    }


def rotate(repo: Repo, raw: str | None, *, key_file: Path | None = None) -> tuple[dict[str, Any], str | None]:
    """A new key for RAW (or the one in KEY_FILE), the old ones closed now; commits."""
    h = holder(repo, raw)
    key = signing.Key.load(key_file) if key_file else signing.Key.generate()
    now = clock.utc_now()
    entry = trust.key_entry(key.public_line, now)
    if any(k["key"] == entry["key"] for k in h.keys):
        raise RefusedError(f"that key is already one of {h.email}'s", "give a new key, or none for a fresh one")
    keys = [*trust.retire_keys(h.keys, now), entry]
    if h.name == HUMAN:
        name, _ = git.user_ident(repo.root)
        closed = {path: {**doc, "until": doc.get("until") or now} for path, doc in trust.read_human_keys(repo).items()
                  if doc["email"] == h.email}
        path, doc = trust.human_key(h.email, name, key.public_line)
        files = trust.files_for(repo, {}, {**closed, path: {**doc, "from": now}})
    else:
        agent = Registry(repo).get(h.name)
        passport = {**agent.passport, "keys": keys}
        files = {agent_files(h.name)["passport"]: encode(passport), **trust.files_for(repo, {h.name: passport})}
    Keyring(repo.root).put(h.email, key)
    message = (f"aipass: new signing key for {h.email}\n\nFingerprint: {signing.fingerprint(key.public_line)}\n\n"
               f"Aipass-Event: key-rotate\n")
    commit = commit_files(repo, files, message)
    return show(repo, raw), commit


def import_key(repo: Repo, raw: str | None, key_file: Path) -> dict[str, Any]:
    """Bring RAW's private key to this clone (e.g. to the clone an agent runs in); the key
    must be one the project trusts for RAW now."""
    h = holder(repo, raw)
    key = signing.Key.load(key_file)
    line = " ".join(key.public_line.split()[:2])
    if not any(k["key"] == line and not k.get("until") for k in h.keys):
        raise RefusedError(f"{key_file} is not a current key of {h.email}",
                           f"to make it one: git aipass key rotate {'@' + h.name if h.name != HUMAN else HUMAN} --key {key_file}")
    Keyring(repo.root).put(h.email, key)
    return show(repo, raw)
