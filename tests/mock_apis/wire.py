"""The few shapes every vendor module shares: a received request and a reply to send.

A reply is built whole before anything is written, so the server alone decides timing
(the delay of `slow`) and each vendor module stays a set of pure functions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Request:
    """One request as the mock received it. `main` tells whether it belongs to the scripted
    conversation; `turn` and `session` are only set for those, `status` once answered."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    main: bool = False
    turn: int | None = None
    session: str | None = None
    status: int | None = None


@dataclass
class Reply:
    """Status, headers and body pieces. With `stream` the body is server-sent events, and
    the first piece goes out before a `slow` delay, the rest after it."""

    status: int
    chunks: list[bytes]
    headers: dict[str, str] = field(default_factory=dict)
    stream: bool = False


def json_reply(status: int, payload: Any, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, [json.dumps(payload).encode()],
                 {"content-type": "application/json", **(headers or {})})


def sse_reply(events: list[tuple[str | None, Any]]) -> Reply:
    """Events as (event name or None, JSON data); blank line after each, as SSE requires."""
    chunks = []
    for name, data in events:
        head = f"event: {name}\n" if name else ""
        chunks.append(f"{head}data: {json.dumps(data)}\n\n".encode())
    return Reply(200, chunks, {"content-type": "text/event-stream", "cache-control": "no-cache"},
                 stream=True)
