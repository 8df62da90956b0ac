"""Dispatch test helpers: fake AI CLIs on PATH, a repository with fast timeouts, and
readers for the event log, the fakes' records and mailboxes."""

import json
import os
import stat
import sys
import time
from pathlib import Path

import pytest
from conftest import git

from aipass_git.core.repo import discover
from aipass_git.dispatch import dispatcher
from aipass_git.dispatch.runtime import Runtime

FAKE = Path(__file__).parent / "fakes" / "fake_cli.py"
FAST_TIMEOUTS = {
    "startup_seconds: 90": "startup_seconds: 30",
    "retry_backoff_seconds: 10": "retry_backoff_seconds: 0",
    "rate_limit_backoff_seconds: 300": "rate_limit_backoff_seconds: 0.2",
}


@pytest.fixture
def fake_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """claude, codex and gemini on PATH, recording to and planned from the returned folder."""
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir()
    for name in ("claude", "codex", "gemini"):
        target = bin_dir / name
        target.write_text(f"#!{sys.executable}\n" + FAKE.read_text())
        target.chmod(target.stat().st_mode | stat.S_IEXEC)
    record = tmp_path / "fake-record"
    record.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_CLI_DIR", str(record))
    return record


@pytest.fixture
def drepo(mail_repo: Path) -> Path:
    """The mail repository with fast timeouts and agents on each provider."""
    config = mail_repo / ".aipass/config.yaml"
    text = config.read_text()
    for old, new in FAST_TIMEOUTS.items():
        text = text.replace(old, new)
    # these tests run as root in CI, where Claude Code needs its sandbox variable
    config.write_text(text.replace("  claude:\n", '  claude:\n    env: {IS_SANDBOX: "1"}\n'))
    for name, provider in (("api", "claude"), ("docs", "codex"), ("quality", "gemini")):
        path = mail_repo / f".aipass/agents/{name}/passport.json"
        doc = json.loads(path.read_text())
        doc["provider"] = provider
        doc["model"] = "opus" if name == "api" else None
        path.write_text(json.dumps(doc))
    git(mail_repo, "commit", "-qam", "test settings")
    return mail_repo


def plan(record: Path, agent: str, *modes: str) -> None:
    (record / f"plan-{agent}").write_text(" ".join(modes))


def calls(record: Path) -> list[dict]:
    path = record / "calls.jsonl"
    return [json.loads(l) for l in path.read_text().splitlines()] if path.exists() else []


def run_dispatch(repo: Path, agent: str, subject: str = "do it", body: str = "details", timeout: float = 60):
    sent = dispatcher.dispatch(discover(repo), agent, subject, body)
    return sent, dispatcher.wait(discover(repo), sent.message["id"], timeout=timeout)


def events(repo: Path, dispatch_id: str | None = None) -> list[dict]:
    return [e for e in Runtime(discover(repo)).events() if dispatch_id is None or e.get("dispatch") == dispatch_id]


def mailbox(cli, repo: Path, owner: str = "@human") -> list[dict]:
    return json.loads(cli("inbox", owner, "--all", "--json", cwd=repo).out)["messages"]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purposes
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False




def wait_for(condition, what: str, seconds: float = 30.0):
    """Poll CONDITION until it returns something true; fail naming WHAT after SECONDS.
    A bound on waiting for an event, never a measurement: the tests do not time anything."""
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"gave up waiting: {what}"
        time.sleep(0.02)


def pids(path: Path) -> list[int]:
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def configure(repo: Path, **settings) -> None:
    """Set `key: value` lines of the repository's config (timeouts, limits) in place."""
    import re

    config = repo / ".aipass/config.yaml"
    text = config.read_text()
    for key, value in settings.items():
        text, n = re.subn(rf"(?m)^(\s+{key}:).*$", rf"\g<1> {value}", text)
        assert n == 1, key
    config.write_text(text)


def state_is(repo: Path, agent: str, *states: str) -> dict | None:
    state = Runtime(discover(repo)).read_state(agent)
    return state if state.get("state") in states else None


def answers(cli, repo: Path, dispatch_id: str, owner: str = "@human") -> list[dict]:
    """Messages in OWNER's mailbox that answer DISPATCH_ID."""
    return [m for m in mailbox(cli, repo, owner) if m["in_reply_to"] == dispatch_id]
