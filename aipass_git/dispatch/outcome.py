"""What a provider's structured output says about its run: finished or not, the final
text, the error, a rate limit, a turn limit.

Read from the JSON the CLIs print for scripts, never from a terminal screen:

- Claude Code, `--output-format stream-json` (or `json`): the last line is
  `{"type": "result", "subtype": "success" | "error_max_turns" | ..., "is_error": ...,
  "result": TEXT}`; API errors (429, 5xx) are reported there too.
- Gemini CLI, `--output-format stream-json`: assistant `message` events, then
  `{"type": "result", "status": "success" | "error", "error": {...}}`; with `json`, one
  pretty-printed object `{"response": TEXT, "error": {...}}`.
- Codex CLI, `exec --json`: `item.completed` events whose item is an `agent_message`,
  then `turn.completed`, or `turn.failed` / `error` with a message.
- Anything else that prints `{"type": "result", "is_error": ..., "result": ...}` (the
  built-in local agent does) is read as Claude's result.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RATE_LIMIT = re.compile(
    r"rate[ _-]?limit|too many requests|\b429\b|quota exceeded|resource[ _]exhausted|overloaded", re.IGNORECASE
)
TAIL_BYTES = 1 << 20  # the final result sits at the end; a long session's log can be large
TEXT_LIMIT = 2000  # characters of the final text carried into a bounce or notice


@dataclass
class Outcome:
    finished: bool = False  # a final result (or a final error) was printed
    is_error: bool = False
    text: str = ""  # the agent's final answer, or the error it reported
    turn_limit: bool = False  # stopped at its turn limit: a restart would stop there again

    @property
    def rate_limited(self) -> bool:
        return self.is_error and bool(RATE_LIMIT.search(self.text))


def read(stdout: Path) -> Outcome:
    """The outcome recorded in a provider's stdout log (an empty Outcome if none)."""
    return parse(_tail(stdout))


def parse(text: str) -> Outcome:
    """The outcome in the text a provider printed on stdout."""
    events = _events(text)
    outcome = Outcome()
    answer: list[str] = []
    for event in events:
        _fold(event, outcome, answer)
    if answer and not outcome.text:
        outcome.text = "".join(answer)
    outcome.text = cut(outcome.text.strip())
    return outcome


def cut(text: str, limit: int = TEXT_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _fold(event: dict[str, Any], outcome: Outcome, answer: list[str]) -> None:
    kind = event.get("type")
    if kind == "result":
        outcome.finished = True
        if "is_error" in event:  # claude, and programs that speak its format
            subtype = str(event.get("subtype", ""))
            outcome.turn_limit = subtype == "error_max_turns"
            outcome.is_error = bool(event.get("is_error")) or outcome.turn_limit
            outcome.text = _text(event.get("result")) or _error_text(event.get("errors")) or subtype
        else:  # gemini stream-json
            outcome.is_error = event.get("status") not in (None, "success")
            outcome.text = _error_text(event.get("error")) if outcome.is_error else "".join(answer)
    elif kind in ("tool_use", "tool_result"):  # gemini: the final answer comes after the last tool
        answer.clear()
    elif kind == "message" and event.get("role") == "assistant":
        piece = _text(event.get("content"))
        if not event.get("delta"):
            answer.clear()
        answer.append(piece)
    elif kind == "item.completed":
        item = event.get("item") or {}
        if item.get("type") == "agent_message":
            answer[:] = [_text(item.get("text"))]
    elif kind == "turn.completed":
        outcome.finished, outcome.is_error = True, False
        outcome.text = "".join(answer)
    elif kind in ("turn.failed", "error"):
        outcome.finished, outcome.is_error = True, True
        outcome.text = _error_text(event.get("error")) or _text(event.get("message"))
    elif kind is None and ("response" in event or "error" in event):  # gemini json
        outcome.finished = True
        outcome.is_error = bool(event.get("error"))
        outcome.text = _error_text(event.get("error")) if outcome.is_error else _text(event.get("response"))


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # content blocks
        return "".join(_text(v.get("text") if isinstance(v, dict) else v) for v in value)
    return ""


def _error_text(value: Any) -> str:
    if isinstance(value, dict):
        return _text(value.get("message")) or json.dumps(value, ensure_ascii=False)[:TEXT_LIMIT]
    if isinstance(value, list):
        return "; ".join(filter(None, (_error_text(v) for v in value)))
    return _text(value)


def _events(text: str) -> list[dict[str, Any]]:
    """JSON objects printed one per line; else the last pretty-printed object."""
    events = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            try:
                doc = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(doc, dict):
                events.append(doc)
    if events:
        return events
    start = text.rfind("\n{") + 1  # 0 when there is none: then the text itself must start so
    if not text.startswith("{", start):
        return []
    try:
        doc = json.loads(text[start:])
    except json.JSONDecodeError:
        return []
    return [doc] if isinstance(doc, dict) else []


def _tail(path: Path) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - TAIL_BYTES))
            data = fh.read()
    except FileNotFoundError:
        return ""
    if size > TAIL_BYTES:
        data = data[data.find(b"\n") + 1:]  # the first line was cut: drop it
    return data.decode("utf-8", "replace")
