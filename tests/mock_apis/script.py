"""What a mock model answers: actions, and the script that picks one per request.

A script is keyed on the conversation turn, counted from the request itself (the assistant
or model messages it already holds), never on how many requests came before. So a CLI's
own retry of the same request lands on the same turn, and a test reads as the dialogue:
turn 0 runs a command, turn 1 answers in text.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Text:
    """A final answer in plain text: it ends the CLI's turn."""

    text: str


@dataclass(frozen=True)
class Shell:
    """One call of the CLI's own shell tool (claude Bash, gemini run_shell_command,
    codex exec_command); the CLI runs it and sends the output back as the next turn."""

    command: str


@dataclass(frozen=True)
class Error:
    """An HTTP error in the vendor's own error JSON. Unless `retry`, it carries what
    makes the CLI give up at once where the vendor has such a signal (see each module)."""

    status: int
    message: str
    retry: bool = False


@dataclass(frozen=True)
class RateLimit:
    """A 429 in the vendor's shape. Unless `retry`, shaped so the CLI gives up at once
    (or retries without waiting); with `retry`, the CLI retries at its own pace."""

    message: str = "Rate limit exceeded (mock)"
    retry: bool = False


@dataclass(frozen=True)
class Slow:
    """ACTION after SECONDS. A streamed success sends its headers and first event at
    once, as a real API does, so a CLI waiting for the response head does not time out."""

    seconds: float
    action: Action


Action = Text | Shell | Error | RateLimit | Slow


def text(answer: str) -> Text:
    return Text(answer)


def shell(command: str) -> Shell:
    return Shell(command)


def error(status: int, message: str = "Mock API error", retry: bool = False) -> Error:
    return Error(status, message, retry)


def rate_limit(message: str = "Rate limit exceeded (mock)", retry: bool = False) -> RateLimit:
    return RateLimit(message, retry)


def slow(seconds: float, action: Action) -> Slow:
    return Slow(seconds, action)


Step = Action | Sequence[Action]


class Script:
    """Turn -> actions, consumed in order; the last action of a turn repeats, and turns
    past the end use the last turn's actions.

    With `rate_limit_sessions=K` the main requests of the first K distinct sessions (as the
    vendor module identifies a CLI process) get `rate_limit()` whatever their turn, without
    taking a step: "the first attempt is rate limited, the retried attempt succeeds" then
    holds however the CLI retries inside one process and however long it waits. A CLI that
    sends no session id (gemini) has each turn-0 request counted as a new session, which is
    exact because that vendor's `rate_limit()` is not retried inside the process.
    """

    def __init__(self, steps: Sequence[Step] = (), rate_limit_sessions: int = 0) -> None:
        turns = [[step] if isinstance(step, Text | Shell | Error | RateLimit | Slow) else list(step)
                 for step in steps] or [[Text("Done.")]]
        if any(not actions for actions in turns):
            raise ValueError("every turn needs at least one action")
        self._turns = turns
        self._used: dict[int, int] = {}
        self._limit_sessions = rate_limit_sessions
        self._sessions: list[str] = []
        self._lock = threading.Lock()

    def next_action(self, turn: int, session: str | None) -> Action:
        with self._lock:
            if session is None and turn == 0:
                session = f"turn0-request-{len(self._sessions) + 1}"
            if session is not None:
                if session not in self._sessions:
                    self._sessions.append(session)
                if self._sessions.index(session) < self._limit_sessions:
                    return RateLimit(f"Rate limit exceeded for session {session} (mock)")
            actions = self._turns[min(turn, len(self._turns) - 1)]
            used = self._used.get(turn, 0)
            self._used[turn] = used + 1
            return actions[min(used, len(actions) - 1)]

    @property
    def sessions(self) -> list[str]:
        """Distinct session keys seen so far, in order of their first main request."""
        with self._lock:
            return list(self._sessions)
