"""The error watcher: errors and warnings in the agents' run logs, as events.

It reads what was appended since its last look to the stderr of every run the runtime log
announced (`start` events name the run folder) and to the supervisors' logs of agents that
did anything. A Python traceback is one error (its last line the message, its last frame
the place); any other line that says error, exception, fatal or panic is one error, its
place a `file:line` it names. An error's fingerprint is its place and its message with the
parts that change from run to run (numbers, ids, quoted values, temporary paths) taken
out, so the same fault counts up instead of mailing anew. `on: error` rules fire with
the count (gated by `repeats` and `mute`, then the rule's own gates); `on: warnings`
rules fire when an agent's warnings since the last digest reach `pile`.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aipass_git.dispatch.runtime import Runtime

ERROR = re.compile(r"\b(error|exception|fatal|panic)\b", re.I)
WARNING = re.compile(r"\bwarn(ing)?\b", re.I)
PLACE = re.compile(r"([\w./-]+\.[A-Za-z]{1,5}):(\d+)")
FRAME = re.compile(r'^\s*File "([^"]+)", line (\d+)')
_VARYING = [
    (re.compile(r"/tmp/[^\s'\"]*"), "<tmp>"),
    (re.compile(r"0x[0-9a-f]+|\b[0-9a-f]{7,64}\b", re.I), "<id>"),
    (re.compile(r"'[^']*'|\"[^\"]*\""), "<value>"),
    (re.compile(r"\d+"), "<n>"),
]
READ_MAX = 1 << 20  # bytes read from one log per look: a runaway log is read in slices
LINES_KEPT = 20
STALE_RUN = 86400  # seconds without a byte: a run whose end the log never said is let go


@dataclass
class Found:
    agent: str
    message: str
    where: str
    lines: list[str]
    log: str
    fingerprint: str = field(init=False)

    def __post_init__(self) -> None:
        self.fingerprint = fingerprint(self.message, self.where)


def normalise(message: str) -> str:
    for pattern, token in _VARYING:
        message = pattern.sub(token, message)
    return " ".join(message.split())


def fingerprint(message: str, where: str) -> str:
    return hashlib.sha256(f"{normalise(message)}|{where}".encode()).hexdigest()[:12]


def parse(text: str, agent: str, log: str) -> tuple[list[Found], list[str]]:
    """(errors, warning lines) in TEXT, a slice of one log."""
    errors, warnings = [], []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("Traceback (most recent call last):"):
            block = [line]
            i += 1
            while i < len(lines) and (lines[i].startswith((" ", "\t")) or not lines[i].strip()):
                block.append(lines[i])
                i += 1
            if i < len(lines):
                block.append(lines[i])  # the exception's own line
                i += 1
            frames = [m for m in (FRAME.match(b) for b in block) if m]
            where = f"{frames[-1].group(1)}:{frames[-1].group(2)}" if frames else ""
            errors.append(Found(agent, block[-1].strip(), where, block[-LINES_KEPT:], log))
            continue
        if ERROR.search(line):
            place = PLACE.search(line)
            errors.append(Found(agent, line.strip()[:500], f"{place.group(1)}:{place.group(2)}" if place else "",
                                lines[max(0, i - 2): i + 3], log))
        elif WARNING.search(line):
            warnings.append(line.strip()[:500])
        i += 1
    return errors, warnings


class Watcher:
    """Reads the logs from the positions in STATE["watch"] (the engine saves them)."""

    def __init__(self, repo, state: dict[str, Any]) -> None:
        self.runtime = Runtime(repo)
        self.state = state.setdefault("watch", {"logs": {}, "counts": {}, "warnings": {}})

    def note_runs(self, records: list[dict[str, Any]]) -> None:
        """Start following the stderr of each run the runtime log announced, and the
        supervisor log of each agent that did anything."""
        logs = self.state["logs"]
        for r in records:
            agent = r.get("agent")
            if not agent:
                continue
            if r.get("event") == "start" and r.get("run"):
                logs.setdefault(str(Path(r["run"]) / "stderr.log"), {"agent": agent, "offset": 0})
            if r.get("event") == "finished" and r.get("log") and str(Path(r["log"]) / "stderr.log") in logs:
                logs[str(Path(r["log"]) / "stderr.log")]["ended"] = True
            supervisor = str(self.runtime.state_path(agent).parent / "supervisor.log")
            logs.setdefault(supervisor, {"agent": agent, "offset": _size(Path(supervisor))})

    def look(self) -> tuple[list[Found], dict[str, list[str]]]:
        """Errors and warnings (per agent) appended to the followed logs since the last look."""
        errors: list[Found] = []
        warnings: dict[str, list[str]] = {}
        logs = self.state["logs"]
        for path, pos in list(logs.items()):
            p = Path(path)
            size = _size(p)
            if size < pos["offset"]:
                pos["offset"] = 0  # rotated or replaced
            if size > pos["offset"]:
                with open(p, "rb") as fh:
                    fh.seek(pos["offset"])
                    chunk = fh.read(READ_MAX)
                complete = chunk[: chunk.rfind(b"\n") + 1] if len(chunk) == READ_MAX else chunk
                pos["offset"] += len(complete)
                found, warned = parse(complete.decode("utf-8", "replace"), pos["agent"], path)
                errors += found
                if warned:
                    warnings.setdefault(pos["agent"], []).extend(warned)
            if p.name == "stderr.log" and pos["offset"] >= size and (pos.get("ended") or _age(p) > STALE_RUN):
                del logs[path]  # read to the end of a run that is over: it no longer grows
        return errors, warnings

    def count(self, found: Found, now: str) -> int:
        """How many times its fingerprint has been seen, this one included."""
        c = self.state["counts"].setdefault(found.fingerprint, {"count": 0, "first": now, "message": found.message,
                                                                "where": found.where, "agent": found.agent})
        c["count"] += 1
        c["last"] = now
        return c["count"]

    def pile(self, agent: str, lines: list[str]) -> tuple[int, list[str]]:
        """Warnings of AGENT since its last digest (their number and the latest lines)."""
        w = self.state["warnings"].setdefault(agent, {"count": 0, "lines": []})
        w["count"] += len(lines)
        w["lines"] = (w["lines"] + lines)[-LINES_KEPT:]
        return w["count"], w["lines"]

    def digested(self, agent: str) -> None:
        self.state["warnings"][agent] = {"count": 0, "lines": []}


def _age(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return float("inf")


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def due(count: int, repeats: int) -> bool:
    """Fire at the REPEATS-th sighting, then at each doubling (2x, 4x, ...): a fault that
    keeps coming is told again, ever less often."""
    if count < repeats:
        return False
    n = count // repeats
    return count % repeats == 0 and n & (n - 1) == 0
