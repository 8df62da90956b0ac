"""MockAPI: a vendor's HTTP API on 127.0.0.1, answering from a script, for real CLIs.

Only the standard library: tests must run where nothing but the CLIs was installed. The
server is bounded so that a misbehaving CLI cannot hang a test: every connection has an
idle timeout, a `slow` delay ends when the `with` block does, and after `max_requests`
requests the next one gets a 503 and the server closes its listening socket, so further
connections are refused at once.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import ModuleType
from typing import Any

from . import anthropic, gemini, openai
from .script import Script, Slow, Step
from .wire import Reply, Request

VENDORS: dict[str, ModuleType] = {"anthropic": anthropic, "gemini": gemini, "openai": openai}


class MockAPI:
    """`with MockAPI("anthropic", [shell("touch x"), text("done")]) as api:` serves
    `api.url` until the block ends; `api.requests` lists what arrived.

    KIND is "anthropic", "gemini" or "openai"; the script is a `Script` or its steps (see
    script.py), `rate_limit_sessions` as there.
    """

    def __init__(self, kind: str, script: Script | Sequence[Step] = (), *, rate_limit_sessions: int = 0,
                 max_requests: int = 200, socket_timeout: float = 120.0) -> None:
        if kind not in VENDORS:
            raise ValueError(f"unknown API {kind!r}; one of {sorted(VENDORS)}")
        if isinstance(script, Script) and rate_limit_sessions:
            raise ValueError("give rate_limit_sessions to the Script itself")
        self.kind = kind
        self.vendor = VENDORS[kind]
        self.script = script if isinstance(script, Script) else Script(script, rate_limit_sessions)
        self.max_requests = max_requests
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._requests: list[Request] = []
        self._serial = 0
        handler = type("Handler", (_Handler,), {"api": self, "timeout": socket_timeout})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"mock-{kind}", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def requests(self) -> list[Request]:
        with self._lock:
            return list(self._requests)

    @property
    def main_requests(self) -> list[Request]:
        return [r for r in self.requests if r.main]

    def __enter__(self) -> MockAPI:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _admit(self) -> int | None:
        """A serial number for the next request, or None once the bound is reached."""
        with self._lock:
            if self._serial >= self.max_requests:
                return None
            self._serial += 1
            return self._serial

    def _record(self, request: Request) -> None:
        with self._lock:
            self._requests.append(request)

    def _stop_accepting(self) -> None:
        """Refuse new connections from now on (a handler thread cannot call shutdown)."""
        self.stopping.set()

        def close() -> None:
            self._server.shutdown()
            self._server.server_close()

        threading.Thread(target=close, daemon=True).start()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    api: MockAPI

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_DELETE = do_HEAD = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: pytest shows the recorded requests when a test needs them."""

    def _serve(self) -> None:
        api = self.api
        headers = {k.lower(): v for k, v in self.headers.items()}
        body = _parse(self.rfile.read(int(headers.get("content-length") or 0)))
        serial = api._admit()
        if serial is None:
            self.close_connection = True
            self._write(Reply(503, [b'{"error": {"message": "mock request limit reached"}}'],
                              {"content-type": "application/json"}), 0.0)
            api._stop_accepting()
            return
        main, turn, session = api.vendor.classify(Request(self.command, self.path, headers, body))
        request = Request(self.command, self.path, headers, body, main, turn, session)
        delay = 0.0
        if main:
            action = api.script.next_action(turn, session)
            while isinstance(action, Slow):
                delay += action.seconds
                action = action.action
            reply = api.vendor.render(action, request, serial)
        else:
            reply = api.vendor.side(request, serial)
        api._record(dataclasses.replace(request, status=reply.status))
        self._write(reply, delay)

    def _write(self, reply: Reply, delay: float) -> None:
        stopping = self.api.stopping
        if delay and not reply.stream and stopping.wait(delay):
            self.close_connection = True
            return
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("content-length", str(sum(map(len, reply.chunks))))
        self.end_headers()
        if self.command == "HEAD":
            return
        chunks = list(reply.chunks)
        if delay and reply.stream:
            self.wfile.write(chunks.pop(0))
            self.wfile.flush()
            if stopping.wait(delay):
                self.close_connection = True
                return
        for chunk in chunks:
            self.wfile.write(chunk)
        self.wfile.flush()


def _parse(raw: bytes) -> Any:
    """The JSON body, or its text when it is not JSON. All three CLIs send plain JSON
    with a content-length (no chunked or compressed bodies), so nothing else is read."""
    text = raw.decode("utf-8", "replace")
    try:
        return json.loads(text) if text else None
    except ValueError:
        return text
