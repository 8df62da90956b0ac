"""Git drivers for memory.json, registered by `git aipass init`.

- diff (textconv): `git diff` shows entries as readable lines, one per entry.
- merge: entries are unioned by id, so two branches that each learned something merge
  without conflict; an entry deleted on one side stays deleted; the caps are applied to
  the result and the overflow is appended to the agent's archive file.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from aipass_git.core import config as config_mod, git, program, schemas
from aipass_git.core.canonical import encode
from aipass_git.core.errors import AipassError
from aipass_git.core.files import checked
from aipass_git.core.repo import Repo
from aipass_git.memory import working

DRIVER = "aipass-memory"


def install(repo: Repo) -> None:
    """Register both drivers in the repository's own git config."""
    command = program.command()
    settings = {
        f"diff.{DRIVER}.textconv": f"{command} memory textconv",
        f"merge.{DRIVER}.name": "aipass-git: union of memory entries by id",
        f"merge.{DRIVER}.driver": f"{command} memory merge-driver %O %A %B %P",
    }
    for key, value in settings.items():
        git.config_set(repo.root, key, value)


def installed(repo: Repo) -> bool:
    return git.config_get(repo.root, f"merge.{DRIVER}.driver") is not None


def textconv(data: bytes) -> str:
    try:
        doc = json.loads(data)
        sections = [(s, doc[s]) for s in schemas.MEMORY_SECTIONS]
    except (ValueError, KeyError, TypeError):
        return data.decode("utf-8", "replace")  # not ours to judge here: show it as it is
    lines = [f"memory of @{doc.get('agent', '?')}"]
    for section, entries in sections:
        for e in sorted(entries, key=lambda e: e.get("id", "")):
            text = " ".join(str(e.get("text", "")).split())
            lines.append(f"{section[:-1]} {e.get('created', '?')[:10]} {e.get('id', '?')}: {text}")
    return "\n".join(lines) + "\n"


def _entries(doc: dict[str, Any] | None) -> dict[str, tuple[str, dict]]:
    if not doc:
        return {}
    return {e["id"]: (s, e) for s in schemas.MEMORY_SECTIONS for e in doc[s]}


def merge(base: dict | None, ours: dict, theirs: dict) -> dict[str, Any]:
    """Union by id; an entry present in BASE but gone from either side stays gone."""
    b, o, t = _entries(base), _entries(ours), _entries(theirs)
    result = {**ours, **{s: [] for s in schemas.MEMORY_SECTIONS}}
    for key in sorted(o.keys() | t.keys()):
        if key in b and (key not in o or key not in t):
            continue
        section, entry = o.get(key) or t[key]
        result[section].append(entry)
    for section in schemas.MEMORY_SECTIONS:
        result[section].sort(key=lambda e: (e["created"], e["id"]))
    return result


def merge_files(base: Path, ours: Path, theirs: Path, path: str, root: Path) -> int:
    """The merge driver: writes the result into OURS; returns git's exit code (0 merged)."""
    agent = path.split("/")[-2] if path.count("/") >= 2 else None
    try:
        docs = [working.parse(p.read_bytes(), path, agent) if p.stat().st_size else None for p in (base, ours, theirs)]
        if docs[1] is None or docs[2] is None:
            raise AipassError("one side of the merge is empty")
    except (AipassError, OSError):
        # not a memory file we understand: fall back to git's own line merge, with markers
        return subprocess.run(["git", "merge-file", "-L", "ours", "-L", "base", "-L", "theirs",
                               str(ours), str(base), str(theirs)]).returncode and 1
    merged = merge(docs[0], docs[1], docs[2])
    caps = _caps(root)
    moved = working.apply_caps(merged, caps)
    # checked before anything is written: a linked archive is refused (the merge stops with
    # a conflict in memory.json), never appended to wherever the link points
    archive = checked(root, working.archive_rel(agent)) if moved and agent else None
    ours.write_bytes(encode(merged))
    if archive is not None:
        archive.parent.mkdir(parents=True, exist_ok=True)
        with open(archive, "ab") as fh:
            fh.write(working.archive_bytes(moved))
    return 0


def _caps(root: Path) -> working.Caps:

    try:
        return working.Caps.of(config_mod.read(root / ".aipass/config.yaml", ".aipass/config.yaml"))
    except (AipassError, OSError):
        return working.Caps(15, 25_000, working.DEFAULT_ENTRY_MAX_CHARS)
