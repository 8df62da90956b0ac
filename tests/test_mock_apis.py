"""The real agent CLIs against tests/mock_apis: answers, a shell tool call, errors.

These prove the mocks speak each vendor's API well enough for the real claude, codex and
gemini (versions pinned in tests/agent-clis/) to work through them, with the prompt on
stdin as aipass sends it, and that aipass reads each CLI's final result (outcome.py). They skip, saying why, where node or the CLIs cannot be had.
Nothing here asserts on timing: slow answers are only used to order events.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

import real_clis
from aipass_git.dispatch import outcome
from mock_apis import MockAPI, Script, error, rate_limit, shell, slow, text

TIMEOUT = 90


@pytest.fixture(scope="module")
def clis() -> None:
    if reason := real_clis.skip_reason():
        pytest.skip(reason)


@dataclass
class Run:
    kind: str
    code: int
    out: str
    err: str

    def final(self) -> tuple[bool, str]:
        """(succeeded, final answer or error), as the supervisor reads the CLI's output."""
        result = outcome.parse(self.out)
        assert result.finished, f"{self.kind} printed no final result: {self.out[-500:]}"
        return not result.is_error, result.text


def run_cli(kind: str, api: MockAPI, cwd: Path, home: Path, prompt: str = "Please do the task.",
            retries: int | None = None, args: tuple[str, ...] = ()) -> Run:
    env = {**os.environ, **real_clis.prepare(kind, api.url, home, retries=retries)}
    proc = subprocess.run([*real_clis.command(kind), *args], cwd=cwd, env=env, input=prompt, capture_output=True,
                          text=True, timeout=TIMEOUT)
    return Run(kind, proc.returncode, proc.stdout, proc.stderr)


kinds = pytest.mark.parametrize("kind", real_clis.KINDS)


@kinds
def test_text_answer_ends_with_exit_0(kind: str, clis, repo: Path, tmp_path: Path) -> None:
    with MockAPI(real_clis.VENDOR[kind], [text("Hello from the mock")]) as api:
        run = run_cli(kind, api, repo, tmp_path / "home", prompt="Say hello; marker 7f3a.")
    assert run.code == 0, run.err
    assert run.final() == (True, "Hello from the mock")
    main = api.main_requests
    assert [r.turn for r in main] == [0]
    assert "marker 7f3a" in json.dumps(main[0].body), "the prompt read from stdin reached the API"


@kinds
def test_shell_tool_call_runs_in_cwd(kind: str, clis, repo: Path, tmp_path: Path) -> None:
    script = [shell("echo made by the tool > made-by-tool.txt"), text("Made the file")]
    with MockAPI(real_clis.VENDOR[kind], script) as api:
        run = run_cli(kind, api, repo, tmp_path / "home")
    assert run.code == 0, run.err
    assert (repo / "made-by-tool.txt").read_text() == "made by the tool\n"
    assert run.final() == (True, "Made the file")
    assert [r.turn for r in api.main_requests] == [0, 1]


def test_claude_max_turns_ends_with_an_error_result(clis, repo: Path, tmp_path: Path) -> None:
    with MockAPI("anthropic", [shell("true")]) as api:
        run = run_cli("claude", api, repo, tmp_path / "home", args=("--max-turns", "2"))
    assert run.code == 1
    assert run.final() == (False, "Reached maximum number of turns (2)")
    assert [r.turn for r in api.main_requests] == [0, 1]


@kinds
def test_rate_limit_fails_with_the_message_on_stdout(kind: str, clis, repo: Path, tmp_path: Path) -> None:
    with MockAPI(real_clis.VENDOR[kind], [rate_limit("Mock quota exhausted")]) as api:
        run = run_cli(kind, api, repo, tmp_path / "home")
    assert run.code != 0
    ok, message = run.final()
    assert not ok
    # codex shows only the status, not the API's message
    assert ("429 Too Many Requests" if kind == "codex" else "Mock quota exhausted") in message
    assert [r.status for r in api.main_requests] == [429], "rate_limit() makes each CLI give up at once"


@kinds
def test_server_error_fails_when_retries_are_off(kind: str, clis, repo: Path, tmp_path: Path) -> None:
    with MockAPI(real_clis.VENDOR[kind], [error(500, "Mock server failure")]) as api:
        run = run_cli(kind, api, repo, tmp_path / "home", retries=0)
    assert run.code != 0
    ok, message = run.final()
    assert not ok and message
    if kind != "codex":  # codex replaces a 5xx message with its own "high demand" text
        assert "Mock server failure" in message
    assert len(api.main_requests) == 1


@kinds
def test_first_session_rate_limited_second_succeeds(kind: str, clis, repo: Path, tmp_path: Path) -> None:
    script = Script([text("Second attempt worked")], rate_limit_sessions=1)
    with MockAPI(real_clis.VENDOR[kind], script) as api:
        first = run_cli(kind, api, repo, tmp_path / "home")
        second = run_cli(kind, api, repo, tmp_path / "home")
    assert first.code != 0 and not first.final()[0]
    assert second.code == 0, second.err
    assert second.final() == (True, "Second attempt worked")
    assert len(script.sessions) == 2


@kinds
def test_first_line_comes_before_the_answer(kind: str, clis, repo: Path, tmp_path: Path) -> None:
    """A watchdog may take the first stdout line as "started": it must not wait for the API."""
    with MockAPI(real_clis.VENDOR[kind], [slow(60, text("too late"))]) as api:
        env = {**os.environ, **real_clis.prepare(kind, api.url, tmp_path / "home")}
        with subprocess.Popen(real_clis.command(kind), cwd=repo, env=env, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                              start_new_session=True) as proc:
            guard = threading.Timer(TIMEOUT, os.killpg, (proc.pid, signal.SIGKILL))
            guard.start()
            proc.stdin.write("Please wait.")
            proc.stdin.close()
            line = proc.stdout.readline()
            guard.cancel()
            os.killpg(proc.pid, signal.SIGKILL)
    first = json.loads(line)
    assert first["type"] in ("system", "thread.started", "init"), first
    assert "too late" not in json.dumps(first)


def test_script_turns_steps_and_bounds() -> None:
    """The mock alone: a turn's actions in order with the last repeating, side requests
    outside the script, and a 503 once the request bound is reached."""
    script = [[error(400, "first"), text("second")], text("turn one")]
    with MockAPI("anthropic", script, max_requests=5) as api:
        def post(assistant_turns: int, tools: bool = True) -> tuple[int, dict]:
            messages = [{"role": "user", "content": "hi"}]
            messages += [{"role": "assistant", "content": "x"}, {"role": "user", "content": "y"}] * assistant_turns
            body = {"model": "m", "messages": messages, "tools": [{"name": "Bash"}] if tools else []}
            req = urllib.request.Request(f"{api.url}/v1/messages", json.dumps(body).encode(),
                                         {"content-type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=10) as resp:
                    return resp.status, json.loads(resp.read())
            except urllib.error.HTTPError as exc:
                return exc.code, json.loads(exc.read())

        assert post(0)[0] == 400
        assert post(0, tools=False)[1]["content"][0]["text"] == "Mock side answer"
        assert post(0)[1]["content"][0]["text"] == "second"
        assert post(0)[1]["content"][0]["text"] == "second"
        assert post(3)[1]["content"][0]["text"] == "turn one"
        assert post(1)[0] == 503
    assert [(r.main, r.turn, r.status) for r in api.requests] == [
        (True, 0, 400), (False, None, 200), (True, 0, 200), (True, 0, 200), (True, 3, 200)]
