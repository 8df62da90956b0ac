"""The Anthropic Messages API as claude-code 2.1 uses it.

Measured against claude-code 2.1.197 (`ANTHROPIC_BASE_URL` pointed here):
- `HEAD /` once at start (a reachability probe), then `POST /v1/messages?beta=true` with
  `"stream": true`. After a failed stream it may repeat the request without `stream`
  and expects one JSON message, so both forms are served.
- The main conversation carries the agent's tools (Bash among ~25). `claude -p` sent no
  side query in these tests; a tool-less message (titles, topic checks in interactive
  use) gets a short text and `count_tokens` a count, neither taking a script step.
- Each request names its process in the `X-Claude-Code-Session-Id` header (the same id
  is in `metadata.user_id` and in the CLI's init line); that is the session key.
- Errors: `{"type": "error", "error": {"type", "message"}}`. claude retries 429, 5xx and
  529 up to 10 times (env CLAUDE_CODE_MAX_RETRIES), 0.5 s apart at first and doubling to
  32 s; a `retry-after` header only lengthens that. `x-should-retry: false` stops it at
  once, so `error()` and `rate_limit()` send it unless made with `retry=True`.
"""

from __future__ import annotations

import json

from .script import Action, Error, RateLimit, Shell, Text
from .wire import Reply, Request, json_reply, sse_reply

_ERROR_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
    403: "permission_error", 404: "not_found_error", 413: "request_too_large",
    429: "rate_limit_error", 500: "api_error", 504: "timeout_error", 529: "overloaded_error",
}


def classify(request: Request) -> tuple[bool, int | None, str | None]:
    """(main conversation?, turn, session) of one request."""
    body = request.body
    if request.method != "POST" or _route(request) != "/v1/messages" \
            or not isinstance(body, dict) or not body.get("tools"):
        return False, None, None
    turn = sum(1 for m in body.get("messages", []) if m.get("role") == "assistant")
    return True, turn, request.headers.get("x-claude-code-session-id")


def render(action: Action, request: Request, serial: int) -> Reply:
    """The reply for a scripted action (not `Slow`: the server unwraps it)."""
    if isinstance(action, RateLimit | Error):
        status = 429 if isinstance(action, RateLimit) else action.status
        return _error(status, action.message, {} if action.retry else {"x-should-retry": "false"})
    if isinstance(action, Text):
        block = {"type": "text", "text": action.text}
        stop = "end_turn"
    elif isinstance(action, Shell):
        block = {"type": "tool_use", "id": f"toolu_mock{serial:06d}", "name": "Bash",
                 "input": {"command": action.command, "description": "Run the scripted command"}}
        stop = "tool_use"
    else:
        raise TypeError(f"cannot render {action!r}")
    return _message(request.body, block, stop, serial)


def side(request: Request, serial: int) -> Reply:
    """Anything outside the script: answered so that claude carries on."""
    route = _route(request)
    if route == "/v1/messages/count_tokens":
        return json_reply(200, {"input_tokens": 100})
    if route == "/v1/messages" and request.method == "POST" and isinstance(request.body, dict):
        return _message(request.body, {"type": "text", "text": "Mock side answer"}, "end_turn", serial)
    if request.method in ("HEAD", "GET") and route == "/":
        return Reply(200, [b""])
    return _error(404, f"mock has no {request.method} {route}")


def _route(request: Request) -> str:
    return request.path.split("?", 1)[0]


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Reply:
    kind = _ERROR_TYPES.get(status, "api_error")
    return json_reply(status, {"type": "error", "error": {"type": kind, "message": message},
                               "request_id": "req_mock"}, headers)


def _message(body: dict, block: dict, stop: str, serial: int) -> Reply:
    usage = {"input_tokens": 100, "output_tokens": 10, "cache_creation_input_tokens": 0,
             "cache_read_input_tokens": 0}
    message = {"id": f"msg_mock{serial:06d}", "type": "message", "role": "assistant",
               "model": body.get("model", "mock"), "stop_reason": None, "stop_sequence": None}
    if not body.get("stream"):
        return json_reply(200, {**message, "content": [block], "stop_reason": stop, "usage": usage})
    if block["type"] == "text":
        start, delta = {"type": "text", "text": ""}, {"type": "text_delta", "text": block["text"]}
    else:
        start = {**block, "input": {}}
        delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
    return sse_reply([
        ("message_start", {"type": "message_start", "message": {**message, "content": [], "usage": usage}}),
        ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": start}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                           "usage": {"output_tokens": 10}}),
        ("message_stop", {"type": "message_stop"}),
    ])
