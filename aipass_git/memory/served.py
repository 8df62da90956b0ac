"""Memory searches served by `git aipass daemon`, which keeps the model and the index loaded.

A cold `memory search` spends most of its time loading the embedding model and the
vector store; the daemon loads them once (on its first request, so an idle daemon stays
small) and answers over a Unix socket in the runtime dir, readable by the user only.
One JSON line asks (the asker's worktree, the query, whose memory, how many, the mode),
one JSON document answers (the hits as `memory search --json` prints them, and the mode).
The daemon searches the asker's worktree (a desk's memory is its branch's), after the
same change check as a local search, so both give the same answer. Anything amiss (no
daemon, an old one, an error) makes the asker search by itself: serving is only faster,
never different.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from pathlib import Path
from typing import Any

from aipass_git.core.errors import AipassError
from aipass_git.core.handoff import MAX_SOCKET_PATH  # a longer path is not served
from aipass_git.core.repo import Repo, discover

SOCKET = "memory.sock"
ASK_SECONDS = 30.0  # a first request loads the model; later ones take milliseconds
REQUEST_BYTES = 64 * 1024


def socket_path(repo: Repo) -> Path:
    return repo.runtime_dir / SOCKET


def ask(repo: Repo, query: str, agents: list[str] | None, k: int, mode: str | None) -> tuple[list[dict[str, Any]], str] | None:
    """The daemon's answer, (hits as dicts, mode), or None when no daemon answers."""
    path = socket_path(repo)
    if len(str(path)) > MAX_SOCKET_PATH or not path.exists():
        return None
    request = {"root": str(repo.root), "query": query, "agents": agents, "k": k, "mode": mode}
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(ASK_SECONDS)
            conn.connect(str(path))
            conn.sendall(json.dumps(request).encode("utf-8") + b"\n")
            conn.shutdown(socket.SHUT_WR)
            reply = json.loads(_read_all(conn))
    except (OSError, ValueError):
        return None  # no daemon (a stale socket), or it went away: search here
    if not isinstance(reply, dict) or not isinstance(reply.get("hits"), list) or "error" in reply:
        return None  # the local search says what is wrong, in its own words and exit code
    return reply["hits"], str(reply.get("mode"))


def _read_all(conn: socket.socket, limit: int | None = None) -> bytes:
    chunks, size = [], 0
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
        if limit is not None and size > limit:
            raise ValueError("request too long")


def serve(repo: Repo, stopping: threading.Event) -> None:
    """Answer searches until STOPPING is set (the daemon's thread); one at a time, since
    the model and the index are not shared between threads."""
    path = socket_path(repo)
    if len(str(path)) > MAX_SOCKET_PATH:
        return
    path.unlink(missing_ok=True)  # a socket left by a daemon that was killed
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(path))
        os.chmod(path, 0o600)  # before it listens: nobody else connects (not umask: it is the whole process's)
        server.listen(8)
        server.settimeout(0.5)  # how soon a stopping daemon notices
        try:
            while not stopping.is_set():
                try:
                    conn, _ = server.accept()
                except socket.timeout:
                    continue
                with conn:
                    conn.settimeout(ASK_SECONDS)
                    try:
                        request = _read_all(conn, REQUEST_BYTES)
                    except (OSError, ValueError):
                        continue  # too long, or the asker gave up: it searches by itself
                    try:
                        conn.sendall(json.dumps(answer(repo, request)).encode("utf-8"))
                    except OSError:
                        continue
        finally:
            path.unlink(missing_ok=True)


_OPEN: dict[str, tuple[Any, Any]] = {}  # worktree -> (index folder's identity, its MemoryIndex): the serving thread's own


def _kept(asker: Repo, opener) -> Any:
    """The asker's MemoryIndex, kept open between requests; opened again when the index
    folder was rebuilt meanwhile (`reindex` removes it, and an open catalog would keep
    answering from the removed one)."""
    try:
        found = os.stat(asker.runtime_dir / "memory-index" / "catalog.sqlite3")
        identity = (found.st_dev, found.st_ino)
    except OSError:
        identity = None
    key = str(asker.root)
    held = _OPEN.get(key)
    if held is not None and held[0] == identity and identity is not None:
        return held[1]
    if held is not None:
        held[1].close()
    index = opener(asker)
    _OPEN[key] = (identity, index)
    return index


def answer(repo: Repo, raw: bytes) -> dict[str, Any]:
    """The reply to one request (errors as {"error": ...}, never raised)."""
    from aipass_git.memory.index import MemoryIndex  # deferred: the daemon loads the model on its first request
    from aipass_git.memory.search import search  # deferred: as above

    try:
        request = json.loads(raw)
        asker = discover(request["root"])
        if asker.common_dir.resolve() != repo.common_dir.resolve():
            return {"error": f"{request['root']} is not a worktree of {repo.root}"}
        agents = request.get("agents")
        kept = _kept(asker, MemoryIndex)
        hits, mode = search(asker, str(request["query"]), list(agents) if agents is not None else None,
                            int(request.get("k") or 5), mode=request.get("mode"), index=kept)
        return {"hits": [h.as_dict() for h in hits], "mode": mode}
    except AipassError as exc:
        return {"error": exc.message}
    except (ValueError, KeyError, TypeError) as exc:
        return {"error": f"a malformed request: {exc}"}
    except Exception as exc:  # noqa: BLE001 - one bad request must not end the daemon's serving
        return {"error": f"{type(exc).__name__}: {exc}"}
