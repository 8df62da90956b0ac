"""The Gemini API (generativelanguage v1beta) as gemini-cli 0.61 uses it.

Measured against gemini-cli 0.61.0 (`GOOGLE_GEMINI_BASE_URL` pointed here, API-key auth):
- The main conversation is `POST /v1beta/models/<model>:streamGenerateContent?alt=sse`
  with `tools[].functionDeclarations` (run_shell_command among ~15). Its `contents` hold
  the history; `model` contents are past answers, so their count is the turn.
- The one side call seen is `:generateContent` without tools, before each prompt: the
  model router's complexity classifier (flash-lite, answer shaped by
  `responseJsonSchema`). Side calls get JSON filled from their schema, or a short text,
  and take no script step; `:countTokens` gets a count.
- No request names the process (no session id in headers or body), so `classify` gives
  no session and the script counts each turn-0 request as a new session.
- Errors: `{"error": {"code", "message", "status", "details"}}`. gemini retries 429 and
  5xx up to 10 times, 5 s apart at first and doubling to 30 s (settings
  general.maxAttempts lowers that), except a 429 whose message says "limit: 0": a quota
  no retry can help (TerminalQuotaError), so it fails at once and shows the message.
  `rate_limit()` sends that one.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .script import Action, Error, RateLimit, Shell, Text
from .wire import Reply, Request, json_reply, sse_reply

_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
           429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
_TERMINAL_QUOTA = "* Quota exceeded for metric: generativelanguage.googleapis.com/generate_content_requests, limit: 0"
_ROUTE = re.compile(r"^/v1(?:beta|alpha)?/models/(?P<model>[^:/]+):(?P<method>\w+)$")


def classify(request: Request) -> tuple[bool, int | None, str | None]:
    """(main conversation?, turn, session) of one request."""
    body = request.body
    match = _ROUTE.match(request.path.split("?", 1)[0])
    if (request.method != "POST" or not match or match["method"] != "streamGenerateContent"
            or not isinstance(body, dict) or not body.get("tools")):
        return False, None, None
    turn = sum(1 for c in body.get("contents", []) if c.get("role") == "model")
    return True, turn, None


def render(action: Action, request: Request, serial: int) -> Reply:
    """The reply for a scripted action (not `Slow`: the server unwraps it)."""
    if isinstance(action, RateLimit):
        return _error(429, action.message if action.retry else f"{action.message}\n{_TERMINAL_QUOTA}")
    if isinstance(action, Error):
        return _error(action.status, action.message)
    if isinstance(action, Text):
        part: dict[str, Any] = {"text": action.text}
    elif isinstance(action, Shell):
        part = {"functionCall": {"name": "run_shell_command", "id": f"call_mock{serial:06d}",
                                 "args": {"command": action.command, "description": "Run the scripted command"}}}
    else:
        raise TypeError(f"cannot render {action!r}")
    model = _model(request.path)
    # a thought first, as gemini 3 models send: `slow` delivers it at once, the answer later
    thought = _chunk(model, serial, [{"text": "Following the script.", "thought": True}], None)
    return sse_reply([(None, thought), (None, _chunk(model, serial, [part], "STOP"))])


def side(request: Request, serial: int) -> Reply:
    """Anything outside the script: answered so that gemini carries on."""
    match = _ROUTE.match(request.path.split("?", 1)[0])
    body = request.body if isinstance(request.body, dict) else {}
    if match and match["method"] == "countTokens":
        return json_reply(200, {"totalTokens": 100})
    if match and match["method"] in ("generateContent", "streamGenerateContent"):
        config = body.get("generationConfig") or {}
        schema = config.get("responseJsonSchema") or config.get("responseSchema")
        text = json.dumps(_fill(schema)) if schema else "Mock side answer"
        chunk = _chunk(match["model"], serial, [{"text": text}], "STOP")
        return sse_reply([(None, chunk)]) if match["method"] == "streamGenerateContent" else json_reply(200, chunk)
    return _error(404, f"mock has no {request.method} {request.path}")


def _model(path: str) -> str:
    match = _ROUTE.match(path.split("?", 1)[0])
    return match["model"] if match else "mock"


def _chunk(model: str, serial: int, parts: list[dict], finish: str | None) -> dict:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    return {"candidates": [candidate], "modelVersion": model, "responseId": f"mock{serial:06d}",
            "usageMetadata": {"promptTokenCount": 100, "candidatesTokenCount": 10, "totalTokenCount": 110}}


def _fill(schema: Any) -> Any:
    """A value that satisfies a JSON schema: first enum value, else a plain one per type."""
    if not isinstance(schema, dict):
        return None
    if schema.get("enum"):
        return schema["enum"][0]
    kind = str(schema.get("type", "object")).lower()
    if kind == "object":
        props = schema.get("properties", {})
        return {name: _fill(sub) for name, sub in props.items()}
    if kind == "array":
        return []
    return {"string": "mock", "integer": 1, "number": 1, "boolean": False}.get(kind)


def _error(status: int, message: str) -> Reply:
    return json_reply(status, {"error": {"code": status, "message": message,
                                         "status": _STATUS.get(status, "UNKNOWN"), "details": []}})
