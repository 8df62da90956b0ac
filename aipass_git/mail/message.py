"""A mail message: its fields, its limits, and the one-line summary kept in the index."""

from __future__ import annotations

import json
import os
from typing import Any

from aipass_git.core import clock, ids, schemas, text
from aipass_git.core.canonical import encode
from aipass_git.core.names import HUMAN  # noqa: F401 - mail speaks of the human too
from aipass_git.core.errors import RefusedError
from aipass_git.core.validate import Const, Nullable, Obj, Str, Violation

KINDS = ("mail", "dispatch", "reply", "bounce", "notice", "pr")
STATUSES = ("new", "read", "done")  # only ever moves forward, so merges can take the max
# summary fields events change after delivery: the status, and which clone claimed a dispatch
MUTABLE = ("status", "claim")

ADDRESS = Str(pattern=r"[a-z][a-z0-9_-]*", max_len=32, expected="an agent name or human")
MESSAGE = Obj(
    required={
        "v": Const(schemas.FORMAT_VERSION),
        "id": schemas.ENTRY_ID,
        "from": ADDRESS,
        "to": ADDRESS,
        "subject": Str(max_len=1000, one_line=True),
        "body": Str(min_len=0, max_len=64 * 1024 * 1024),
        "kind": Str(choices=KINDS),
        "thread": schemas.ENTRY_ID,
        "in_reply_to": Nullable(schemas.ENTRY_ID),
        "created": schemas.TIMESTAMP,
        "meta": Obj(allow_extra=True),
    }
)
SUMMARY_FIELDS = ("id", "from", "to", "subject", "kind", "thread", "in_reply_to", "created")


def check_subject(subject: str, max_chars: int) -> str:
    subject = subject.strip()
    if not subject:
        raise RefusedError("the subject is empty", "give a one-line subject")
    if "\n" in subject or "\r" in subject:
        raise RefusedError("the subject has a line break", "a subject is one line; put the rest in the body")
    bad = text.first_unsafe(subject)
    if bad is not None:
        raise RefusedError(f"the subject holds {text.describe(bad)}, which would change how it shows",
                           "a subject is plain text on one line; put anything else in the body")
    if len(subject) > max_chars:
        raise RefusedError(
            f"the subject is {len(subject)} characters (at most {max_chars})",
            "shorten it and put the details in the body (limits.subject_max_chars in .aipass/config.yaml)",
        )
    return subject


def check_body(body: str, max_bytes: int) -> str:
    size = len(body.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise RefusedError(
            f"the body is {size} bytes (at most {max_bytes})",
            "send a shorter body and point at files in the repository (limits.body_max_bytes in .aipass/config.yaml)",
        )
    if not text.is_utf8(body):
        raise RefusedError("the body is not valid UTF-8 text", "send text, not binary data")
    return body


def build(
    *,
    sender: str,
    recipient: str,
    subject: str,
    body: str,
    kind: str = "mail",
    thread: str | None = None,
    in_reply_to: str | None = None,
    meta: dict[str, Any] | None = None,
    message_id: str | None = None,
    created: str | None = None,
) -> dict[str, Any]:
    if kind not in KINDS:
        raise RefusedError(f"unknown message kind {kind!r}", f"one of: {', '.join(KINDS)}")
    message_id = message_id or ids.new_id()
    return {
        "v": schemas.FORMAT_VERSION,
        "id": message_id,
        "from": sender,
        "to": recipient,
        "subject": subject,
        "body": body,
        "kind": kind,
        "thread": thread or message_id,
        "in_reply_to": in_reply_to,
        "created": created or clock.utc_now(),
        "meta": meta or {},
    }


PER_RECIPIENT = ("id", "to", "thread")


def encode_many(messages: list[dict[str, Any]]) -> list[bytes]:
    """Each message as stored (canonical JSON). The copies of one send differ only in id,
    recipient and (for a new thread) thread: the first is encoded with placeholders and
    the rest filled in, a thousand encodes becoming one; a message that differs otherwise
    is encoded on its own."""
    if len(messages) < 2:
        return [encode(m) for m in messages]
    first = messages[0]
    mark = os.urandom(8).hex()  # cannot occur in the text by chance
    own_thread = first["thread"] == first["id"]
    holder = {**first, "id": f"@i{mark}", "to": f"@t{mark}", "thread": f"@i{mark}" if own_thread else first["thread"]}
    template = encode(holder)
    shared = {k: v for k, v in first.items() if k not in PER_RECIPIENT}
    out = []
    for m in messages:
        same = (m["thread"] == m["id"]) == own_thread and (own_thread or m["thread"] == first["thread"])
        if not same or {k: v for k, v in m.items() if k not in PER_RECIPIENT} != shared:
            out.append(encode(m))
            continue
        out.append(template.replace(f"@i{mark}".encode(), m["id"].encode()).replace(f"@t{mark}".encode(), m["to"].encode()))
    return out


def is_valid(doc: Any) -> bool:
    try:
        MESSAGE.check(doc, "")
    except Violation:
        return False
    return True


def summary(message: dict[str, Any], status: str = "new") -> dict[str, Any]:
    line = {k: message[k] for k in SUMMARY_FIELDS}
    line["status"] = status
    return line


# Index lines start with the id, so one line can be found and replaced without parsing
# the others: a status change rewrites one line, an append adds one.
def encode_summary(line: dict[str, Any]) -> bytes:
    ordered = {"id": line["id"], **{k: line[k] for k in (*SUMMARY_FIELDS[1:], "status")}}
    ordered.update((k, line[k]) for k in sorted(line.keys() - ordered.keys()))  # e.g. a dispatch's claim
    return json.dumps(ordered, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"


def find_summary(data: bytes, message_id: str) -> tuple[dict[str, Any], int, int] | None:
    """The summary line of MESSAGE_ID in an index file, with its byte span."""
    needle = b'{"id":"' + message_id.encode() + b'"'
    start = 0 if data.startswith(needle) else data.find(b"\n" + needle) + 1
    if start == 0 and not data.startswith(needle):
        return None
    end = data.index(b"\n", start) + 1
    return json.loads(data[start:end]), start, end


def decode_summary_blobs(blobs: list[bytes]) -> list[dict[str, Any]]:
    """Every summary line of many index files, parsed in one pass of the JSON decoder."""
    parts = [b.strip(b"\n").replace(b"\n", b",") for b in blobs if b.strip()]
    return json.loads(b"[" + b",".join(parts) + b"]") if parts else []


def merge_index(ours: bytes, theirs: bytes) -> tuple[bytes, int]:
    """The index lines of both sides as one index, sorted by id (the same bytes whichever
    side is ours), and how many of OURS's statuses moved forward. A line both sides hold
    takes the later status; the other fields never change after delivery, so where they
    differ (a forgery) the same one wins on either side."""
    lines: dict[str, dict[str, Any]] = {}
    for line in decode_summary_blobs([ours]):
        lines[line["id"]] = line
    advanced = 0
    for line in decode_summary_blobs([theirs]):
        mine = lines.get(line["id"])
        if mine is None:
            lines[line["id"]] = line
            continue
        status = later_status(mine["status"], line["status"])
        advanced += status != mine["status"]
        fixed = ({k: v for k, v in mine.items() if k not in MUTABLE}, {k: v for k, v in line.items() if k not in MUTABLE})
        winner = dict(min(fixed, key=lambda d: json.dumps(d, sort_keys=True))) if fixed[0] != fixed[1] else fixed[0]
        # a claim is won on the remote, so two differing ones mean a clone ran offline or
        # forged one: either side keeps the same one
        claims = sorted(c for c in (mine.get("claim"), line.get("claim")) if c)
        lines[line["id"]] = {**winner, "status": status, **({"claim": claims[0]} if claims else {})}
    return b"".join(encode_summary(lines[i]) for i in sorted(lines)), advanced


def later_status(a: str, b: str) -> str:
    return a if STATUSES.index(a) >= STATUSES.index(b) else b
