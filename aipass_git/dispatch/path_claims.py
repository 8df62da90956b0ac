"""A dispatch's claims on paths (`dispatch --claim GLOB`, a plan phase's `claims:`).

The supervisor claims them for the agent, exclusively, just before it wakes the agent for
that dispatch; the session's end releases them with the agent's other claims. A claim
that someone else holds either bounces the dispatch (`--if-claimed bounce`) or keeps it
in the queue (the default): the supervisor goes on with the next dispatch and leaves a
marker under the runtime dir, and whoever frees claims (a session's end, `claim
release`, a retirement, the daemon's tick for expiries) starts the supervisors of the
agents that wait, which try again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from aipass_git.claims import claim
from aipass_git.claims.matcher import Held
from aipass_git.core import clock, schemas
from aipass_git.core.errors import RefusedError
from aipass_git.core.repo import Repo
from aipass_git.core.validate import check_input
from aipass_git.dispatch.launch import start_supervisor
from aipass_git.store.events import EventStore
from aipass_git.store.objects import Ident

IF_CLAIMED = ("wait", "bounce")
EMPTY = {"claims": [], "released": []}
DEFAULT_TTL_SECONDS = 4 * 3600  # a session's claims end with it; the TTL only bounds a crash


def meta(globs: list[str], if_claimed: str = "wait", ttl_seconds: int | None = None) -> dict[str, Any]:
    """The dispatch meta that asks for GLOBS (checked here, so a bad glob is refused before
    anything is sent)."""
    if if_claimed not in IF_CLAIMED:
        raise RefusedError(f"--if-claimed: {if_claimed!r} is not one of {', '.join(IF_CLAIMED)}",
                           "wait keeps it queued until the claim frees; bounce sends it back at once")
    for glob in globs:
        check_input(glob, schemas.OWNED_GLOB, "--claim", "give globs relative to the repository root, e.g. 'src/api/**'")
    return {"claims": list(globs), "if_claimed": if_claimed, **({"claim_ttl": ttl_seconds} if ttl_seconds else {})}


def wanted(task: dict[str, Any]) -> list[str]:
    found = (task.get("meta") or {}).get("claims") or []
    return [g for g in found if isinstance(g, str)]


def bounces(task: dict[str, Any]) -> bool:
    return (task.get("meta") or {}).get("if_claimed") == "bounce"


def take(store: EventStore, agent: str, task: dict[str, Any], author: Ident) -> Held | None:
    """Claim the task's globs for AGENT; the claim that stands in the way, or None when
    they are taken (or none are wanted)."""
    globs = wanted(task)
    if not globs:
        return None
    ttl = (task.get("meta") or {}).get("claim_ttl")
    try:
        claim.take(store, agent, globs, author=author, reason=f"dispatch {task['id'][:12]}: {task['subject']}"[:300],
                   ttl_seconds=ttl if isinstance(ttl, int) and ttl > 0 else DEFAULT_TTL_SECONDS)
    except claim.ClaimRefused as refused:
        return refused.held
    return None


def _folder(repo: Repo) -> Path:
    return repo.runtime_dir / "claim-waits"


def mark_waiting(repo: Repo, agent: str, task: dict[str, Any], held: Held) -> None:
    folder = _folder(repo)
    folder.mkdir(parents=True, exist_ok=True)
    holder, c = held
    (folder / agent).write_text(json.dumps({"dispatch": task["id"], "holder": holder, "glob": c["glob"],
                                            "until": c["expires"]}), encoding="utf-8")


def clear_waiting(repo: Repo, agent: str, dispatch_id: str | None = None) -> None:
    """AGENT waits no more (for DISPATCH_ID's claim only, when given: it was cancelled)."""
    if dispatch_id is None or waiting(repo).get(agent, {}).get("dispatch") == dispatch_id:
        (_folder(repo) / agent).unlink(missing_ok=True)


def is_waiting(repo: Repo, agent: str) -> bool:
    return (_folder(repo) / agent).is_file()


def waiting(repo: Repo) -> dict[str, dict[str, Any]]:
    """Agent -> what its waiting dispatch waits for (status shows it)."""
    try:
        names = os.listdir(_folder(repo))
    except FileNotFoundError:
        return {}
    found = {}
    for name in names:
        try:
            found[name] = json.loads((_folder(repo) / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
    return found


def wake_waiters(repo: Repo, *, only_freed: bool = False) -> list[str]:
    """Start the supervisors of agents whose dispatch waits for a claim (each tries again
    and leaves at once if still refused, or if its agent is busy); returns them. ONLY_FREED:
    just those whose blocking claim has ended meanwhile (expired, or released in any clone:
    the daemon's tick)."""
    waits = waiting(repo)
    if only_freed and waits:
        with EventStore(repo) as store:
            books = claim.ClaimBook(store).everyone()
        now = clock.utc_now()
        waits = {agent: w for agent, w in waits.items()
                 if not any(c["glob"] == w.get("glob") for c in claim.active(books.get(w.get("holder"), EMPTY), now))}
    agents = sorted(waits)
    for agent in agents:
        start_supervisor(repo, agent)
    return agents
