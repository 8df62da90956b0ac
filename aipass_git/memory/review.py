"""`git aipass memory diff`: what agents learned, forgot and archived on a branch."""

from __future__ import annotations

from typing import Any

from aipass_git.core import git, schemas
from aipass_git.core.config import Config
from aipass_git.core.errors import RefusedError
from aipass_git.core.repo import AGENTS_DIR, Repo
from aipass_git.memory import working
from aipass_git.store.objects import ObjectReader


def resolve_range(repo: Repo, config: Config, spec: str | None) -> tuple[str, str]:
    """(old, new) commits: `A..B`, `A...B` (from their merge base), a branch against the
    base branch (from their merge base), or by default the base branch against HEAD."""
    if spec and ".." in spec:
        sym = "..." in spec
        old, new = spec.split("..." if sym else "..", 1)
        old, new = _commit(repo, old or "HEAD"), _commit(repo, new or "HEAD")
        return (_merge_base(repo, old, new) if sym else old), new
    new = _commit(repo, spec or "HEAD")
    return _merge_base(repo, _commit(repo, config.base_branch), new), new


def _commit(repo: Repo, rev: str) -> str:
    commit = git.resolve_commit(repo.root, rev)
    if commit is None:
        raise RefusedError(f"{rev!r} is not a branch, tag or commit here", "see: git branch -a")
    return commit


def _merge_base(repo: Repo, a: str, b: str) -> str:
    return git.merge_base(repo.root, a, b) or a


def snapshot(repo: Repo, reader: ObjectReader, rev: str) -> dict[str, dict[str, Any]]:
    """agent -> {"memory": {id: (section, entry)}, "archived": {id: record}} at REV."""
    names = git.tree_files(repo.root, rev, AGENTS_DIR)
    wanted = [n for n in names if n.endswith("/memory.json") or ("/archive/" in n and n.endswith(".jsonl"))]
    blobs = reader.read_many([f"{rev}:{n}" for n in wanted]) if wanted else []
    out: dict[str, dict[str, Any]] = {}
    for name, (_, data) in zip(wanted, blobs):
        agent = name.split("/")[2]
        state = out.setdefault(agent, {"memory": {}, "archived": {}})
        if name.endswith("memory.json"):
            doc = working.parse(data, f"{name} at {rev[:10]}", agent)
            for section in schemas.MEMORY_SHOWN:
                for e in doc[section]:
                    state["memory"][e["id"]] = (section, e)
        else:
            for record in working.read_archive(data, f"{name} at {rev[:10]}"):
                state["archived"][record["entry"]["id"]] = record
    return out


def diff(repo: Repo, config: Config, spec: str | None, agent: str | None = None) -> dict[str, Any]:
    old, new = resolve_range(repo, config, spec)
    reader = ObjectReader(repo.root)
    try:
        before, after = snapshot(repo, reader, old), snapshot(repo, reader, new)
    finally:
        reader.close()
    agents = sorted(before.keys() | after.keys())
    if agent is not None:
        agents = [a for a in agents if a == agent]
    report = []
    for name in agents:
        b = before.get(name, {"memory": {}, "archived": {}})
        a = after.get(name, {"memory": {}, "archived": {}})
        known_before = b["memory"].keys() | b["archived"].keys()
        learned = [{"section": s, **e} for i, (s, e) in a["memory"].items() if i not in known_before]
        learned += [{"section": r["section"], **r["entry"]} for i, r in a["archived"].items() if i not in known_before]
        archived = [{"section": r["section"], **r["entry"]} for i, r in a["archived"].items()
                    if i in b["memory"] and i not in b["archived"]]
        forgot = [{"section": s, **e} for i, (s, e) in b["memory"].items()
                  if i not in a["memory"] and i not in a["archived"]]
        if learned or archived or forgot:
            report.append({"agent": name, "learned": learned, "archived": archived, "forgot": forgot})
    return {"old": old, "new": new, "agents": report}
