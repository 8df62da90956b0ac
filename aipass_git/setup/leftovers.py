"""What killed processes leave behind, found for `doctor` and repaired by `doctor --fix`.

Every aipass write path finishes or undoes such leftovers by itself when it next runs;
this gathers them in one place, for a person who wants to see them, or to repair a
repository without waiting for the next write:

- git's `.lock` files (refs, packed-refs, HEAD, index): removed when stale (locks.py);
- journal records of interrupted writes: finished by their writer's own recovery;
- scratch refs of bulk sends whose process is gone: deleted;
- temporary files of atomic writes and private indexes whose process is gone: deleted;
- supervisors that died with a session running: recovered (dispatch/recovery.py);
- claims on paths held by an agent of this clone that has had no session for a while
  (made by hand, or left by a session whose end could not release them): released;
- archive lines written twice: reported only (archives are append-only).
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from dataclasses import asdict, dataclass
from pathlib import Path

from aipass_git.agents.registry import Registry
from aipass_git.agents.session import Session
from aipass_git.claims import claim as claims
from aipass_git.core import clock, git, pids
from aipass_git.core.canonical import TEMP_SUFFIX, temp_owner
from aipass_git.core.files import entries_under
from aipass_git.core.errors import AipassError
from aipass_git.core.repo import AGENTS_DIR, Repo, discover
from aipass_git.core.text import plural
from aipass_git.dispatch import path_claims, recovery
from aipass_git.dispatch.runtime import Runtime
from aipass_git.memory import working
from aipass_git.prs.queue import MergeQueue
from aipass_git.store.events import EventStore
from aipass_git.store.worktree_commit import finish_interrupted
from aipass_git.store import locks, remote
from aipass_git.store.journal import Journal

SCRATCH = "refs/aipass-import/"


@dataclass
class Leftover:
    kind: str  # lock | journal | scratch-ref | temp-file | crashed-session | stale-claim | archive-duplicate
    where: str
    detail: str
    fixable: bool

    def as_dict(self) -> dict:
        return asdict(self)


def find(repo: Repo) -> list[Leftover]:
    return [*_git_locks(repo), *_journal(repo), *_scratch_refs(repo), *_temp_files(repo), *_sessions(repo),
            *_stale_claims(repo), *_archive_duplicates(repo)]


def fix(repo: Repo) -> list[str]:
    """Repair what can be repaired safely; returns one line per repair."""
    done = []
    for item in _git_locks(repo):
        if item.fixable and locks.clear_stale(Path(item.where), wait=0):
            done.append(f"removed the stale lock {item.where}")
    done += _finish_journal(repo)
    for item in _scratch_refs(repo):
        if item.fixable and git.delete_ref(repo.root, item.where):
            done.append(f"deleted the scratch ref {item.where}")
    for item in _temp_files(repo):
        if item.fixable:
            try:
                Path(item.where).unlink()
                done.append(f"removed {item.where}")
            except FileNotFoundError:
                pass
    for item in _sessions(repo):

        recovery.heal(repo, item.where)
        done.append(f"recovered @{item.where}'s session (its supervisor had died)")
    stale = _stale_claims(repo)
    for item in stale:
        with EventStore(repo) as store:
            n = claims.release_all(store, item.where, Session.of_agent(repo, item.where).speaker.author,
                                   "released as stale (no session holds them):")
        if n:
            done.append(f"released @{item.where}'s {plural(n, 'stale claim')}")
    if stale:
        path_claims.wake_waiters(repo)
    return done


# -- finding ------------------------------------------------------------------------------


def _git_dirs(repo: Repo) -> list[Path]:
    dirs = [repo.common_dir]
    worktrees = repo.common_dir / "worktrees"
    if worktrees.is_dir():
        dirs += sorted(p for p in worktrees.iterdir() if p.is_dir())
    return dirs


def _git_locks(repo: Repo) -> list[Leftover]:
    candidates = []
    for folder in _git_dirs(repo):
        candidates += [folder / name for name in ("index.lock", "HEAD.lock", "packed-refs.lock", "config.lock")]
    refs = repo.common_dir / "refs"
    if refs.is_dir():
        candidates += sorted(refs.rglob("*.lock"))
    found = []
    for path in candidates:
        if path.is_file():
            stale = locks.is_stale(path)
            found.append(Leftover("lock", str(path), locks.describe(path)
                                  + ("; stale: no process has it open" if stale else "; in use"), stale))
    return found


def _journal(repo: Repo) -> list[Leftover]:
    found = []
    for path in Journal(repo).all_records():
        found.append(Leftover("journal", str(path), f"an interrupted {path.name.split('-')[0]} write, "
                              "finished by the next write of its kind", True))
    for path in sorted(Journal(repo).folder.glob("*.failed")) if Journal(repo).folder.is_dir() else []:
        found.append(Leftover("journal", str(path), "a batch that could not be finished: its refs were moved "
                              "by something outside aipass; the record lists them", False))
    return found


def _scratch_refs(repo: Repo) -> list[Leftover]:
    found = []
    for ref, _ in git.list_refs(repo.root, SCRATCH):
        pid = ref[len(SCRATCH):].split("-")[0]
        alive = pid.isdigit() and pids.alive(int(pid))
        found.append(Leftover("scratch-ref", ref, "a bulk send in progress" if alive else
                              "left by a bulk send that was killed before it finished", not alive))
    return found


def _temp_files(repo: Repo) -> list[Leftover]:
    found = []
    for root in (repo.runtime_dir, repo.root / ".aipass"):
        for entry in entries_under(root):
            owner = temp_owner(entry.name) if entry.name.endswith(TEMP_SUFFIX) else None
            if owner is not None and not pids.alive(owner):
                found.append(Leftover("temp-file", entry.path, f"half of an atomic write by pid {owner}, which is gone", True))
    for folder in _git_dirs(repo):
        for path in folder.glob("aipass-index-*"):
            pid = path.name.rsplit("-", 1)[-1]
            if pid.isdigit() and not pids.alive(int(pid)):
                found.append(Leftover("temp-file", str(path), f"the private index of pid {pid}, which is gone", True))
    return found


def _sessions(repo: Repo) -> list[Leftover]:

    runtime = Runtime(repo)
    folder = runtime.root / "agents"
    if not folder.is_dir():
        return []
    found = []
    for agent in sorted(p.name for p in folder.iterdir() if p.is_dir()):
        state = runtime.read_state(agent)
        if state.get("state", "idle") != "idle" and not runtime.is_busy(agent):
            found.append(Leftover("crashed-session", agent, f"@{agent}'s supervisor (pid {state.get('pid')}) died "
                                  f"while {state.get('state')}; its dispatch is retried or bounced", True))
    return found


STALE_CLAIM_MINUTES = 10  # younger claims may belong to a session that is just starting


def _stale_claims(repo: Repo) -> list[Leftover]:
    """Active claims of agents that run here, are idle and wait for nothing: a session's
    claims end with it, so these were made by hand or outlived a session."""
    if not git.list_refs(repo.root, claims.NAMESPACE):
        return []
    runtime = Runtime(repo)
    here = remote.clone_name(repo.root, create=False)
    now = clock.utc_now()
    cutoff = (clock.parse(now) - timedelta(minutes=STALE_CLAIM_MINUTES)).strftime("%Y-%m-%dT%H:%M:%SZ")
    with EventStore(repo) as store:
        books = claims.ClaimBook(store).everyone()
    agents = {a.name: a for a in Registry(repo).all()}
    found = []
    for name, doc in sorted(books.items()):
        agent = agents.get(name)
        if agent is None or agent.passport.get("home") not in (None, here):
            continue  # the human's claims end by their expiry; another clone's agent is that clone's to judge
        held = [c for c in claims.active(doc, now) if c["created"] < cutoff]
        if held and runtime.read_state(name).get("state", "idle") == "idle" and not path_claims.is_waiting(repo, name):
            found.append(Leftover("stale-claim", name, f"@{name} has no session but holds {plural(len(held), 'claim')} "
                                  f"({', '.join(c['glob'] for c in held[:3])}{', ...' if len(held) > 3 else ''})", True))
    return found


def _archive_duplicates(repo: Repo) -> list[Leftover]:


    found = []
    for path in sorted((repo.root / AGENTS_DIR).glob("*/archive/*.jsonl")):
        rel = path.relative_to(repo.root).as_posix()
        try:
            records = working.read_archive(path.read_bytes(), rel)
        except (AipassError, OSError):
            continue  # the audit reports a broken archive
        for entry_id, n in sorted(Counter(r["entry"]["id"] for r in records).items()):
            if n > 1:
                found.append(Leftover("archive-duplicate", rel, f"entry {entry_id} is archived {n} times; "
                                      "memory search counts it once", False))
    return found


# -- fixing -------------------------------------------------------------------------------


def _finish_journal(repo: Repo) -> list[str]:
    journal = Journal(repo)
    if not journal.has_records():
        return []

    done = []
    with EventStore(repo) as store, store.gate.exclusive():
        n = store.recover()
        if n:
            done.append(f"finished {n} interrupted bulk send{'s' if n != 1 else ''}")
    for root in _worktree_roots(repo):
        try:
            n = finish_interrupted(discover(root))
        except AipassError:
            continue
        if n:
            done.append(f"brought {root} up to its branch after {n} interrupted commit{'s' if n != 1 else ''}")
    if journal.has_records():

        try:
            queue = MergeQueue(repo)
            with EventStore(repo) as store, queue.locked():
                n = queue.recover(store)
        except AipassError:
            n = 0
        if n:
            done.append(f"finished {n} interrupted merge{'s' if n != 1 else ''}")
    return done


def _worktree_roots(repo: Repo) -> list[Path]:
    return [w.path for w in git.worktrees(repo.root)]
