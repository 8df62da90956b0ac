"""The OpenAI Responses API as codex 0.171 uses it (a `[model_providers]` entry with
`wire_api = "responses"` pointed here).

Measured against codex 0.171.0:
- `POST {base_url}/responses`, streamed (`"stream": true`, `accept: text/event-stream`).
  Its `input` holds the whole conversation; the model's past outputs appear as
  `function_call` items and assistant `message` items, so their count is the turn.
- The shell tool is `exec_command` with `{"cmd": ...}`, run as `/bin/bash -c`. A command
  still running after `yield_time_ms` (10 s) is left running and the model is answered
  without its output; codex kills it when it exits.
- Every request names its process in the `session-id` header (also in
  `client_metadata.session_id`; it is the `thread_id` of codex's first JSON line).
- codex needs `response.completed` to end a response; the items themselves come from
  `response.output_item.done`. Without `response.completed` it reconnects.
- Errors: `{"error": {"message", "type", "code"}}`; codex shows its own text for 429 and
  5xx, not this message. A 429 is retried only when it has a `retry-after` header:
  `rate_limit()` has none and fails at the first request, `rate_limit(retry=True)` sends
  `retry-after: 0`. A 5xx is always retried, 5 requests per stream attempt and 6 attempts
  (provider settings request_max_retries, stream_max_retries), backing off for about
  25 s in all; `error()` sends `retry-after: 0` so those retries take no time.
"""

from __future__ import annotations

import json
from typing import Any

from .script import Action, Error, RateLimit, Shell, Text
from .wire import Reply, Request, json_reply, sse_reply

_ERROR_TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 403: "permission_error",
                404: "not_found_error", 429: "rate_limit_exceeded", 500: "server_error", 503: "server_error"}


def classify(request: Request) -> tuple[bool, int | None, str | None]:
    """(main conversation?, turn, session) of one request."""
    body = request.body
    if request.method != "POST" or not _route(request).endswith("/responses") \
            or not isinstance(body, dict) or not body.get("tools"):
        return False, None, None
    turn = sum(1 for item in body.get("input", []) if isinstance(item, dict) and (
        item.get("type") == "function_call" or (item.get("type") == "message" and item.get("role") == "assistant")))
    return True, turn, request.headers.get("session-id")


def render(action: Action, request: Request, serial: int) -> Reply:
    """The reply for a scripted action (not `Slow`: the server unwraps it)."""
    if isinstance(action, RateLimit):
        return _error(429, action.message, {"retry-after": "0"} if action.retry else None)
    if isinstance(action, Error):
        return _error(action.status, action.message, {"retry-after": "0"})
    if isinstance(action, Text):
        item = {"type": "message", "role": "assistant", "id": f"msg_mock{serial:06d}", "status": "completed",
                "content": [{"type": "output_text", "text": action.text, "annotations": []}]}
    elif isinstance(action, Shell):
        item = {"type": "function_call", "id": f"fc_mock{serial:06d}", "call_id": f"call_mock{serial:06d}",
                "name": "exec_command", "arguments": json.dumps({"cmd": action.command}), "status": "completed"}
    else:
        raise TypeError(f"cannot render {action!r}")
    return _response(request.body, item, serial)


def side(request: Request, serial: int) -> Reply:
    """Anything outside the script. codex 0.171 sent none in these tests; a tool-less
    `/responses` call (as compaction or summaries would be) gets a short text."""
    if _route(request).endswith("/responses") and isinstance(request.body, dict):
        item = {"type": "message", "role": "assistant", "id": f"msg_mock{serial:06d}", "status": "completed",
                "content": [{"type": "output_text", "text": "Mock side answer", "annotations": []}]}
        return _response(request.body, item, serial)
    return _error(404, f"mock has no {request.method} {_route(request)}")


def _route(request: Request) -> str:
    return request.path.split("?", 1)[0]


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Reply:
    kind = _ERROR_TYPES.get(status, "server_error")
    return json_reply(status, {"error": {"message": message, "type": kind, "param": None, "code": kind}}, headers)


def _response(body: dict, item: dict, serial: int) -> Reply:
    response = {"id": f"resp_mock{serial:06d}", "object": "response", "status": "in_progress",
                "model": body.get("model", "mock"), "output": []}
    usage = {"input_tokens": 100, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 10,
             "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 110}
    events: list[tuple[str | None, Any]] = [
        ("response.created", {"type": "response.created", "response": response}),
        ("response.output_item.added", {"type": "response.output_item.added", "output_index": 0,
                                        "item": {**item, "status": "in_progress"}}),
    ]
    if item["type"] == "message":
        events.append(("response.output_text.delta", {"type": "response.output_text.delta", "item_id": item["id"],
                                                      "output_index": 0, "content_index": 0,
                                                      "delta": item["content"][0]["text"]}))
    events += [
        ("response.output_item.done", {"type": "response.output_item.done", "output_index": 0, "item": item}),
        ("response.completed", {"type": "response.completed",
                                "response": {**response, "status": "completed", "output": [item], "usage": usage}}),
    ]
    return sse_reply(events)
