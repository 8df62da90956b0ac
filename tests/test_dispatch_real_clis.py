"""`git aipass dispatch` to the real claude, codex and gemini, with the default argv of a
new project's config, each CLI talking to a mock of its vendor's API on 127.0.0.1.

The mock's shell tool calls make the real CLI run `git aipass reply` and `git commit` on
the agent's desk, as a model would. They skip, saying why, where node or the CLIs cannot
be had (tests/real_clis.py installs them from npm into a cache folder).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import real_clis
from conftest import git
from dispatching import configure, events, mailbox, run_dispatch
from mock_apis import MockAPI, Script, shell, slow, text

VENDOR_OF = real_clis.VENDOR
AGENT_OF = {"claude": "api", "codex": "docs", "gemini": "quality"}
kinds = pytest.mark.parametrize("kind", real_clis.KINDS)

WORK = (
    'echo "work for $AIPASS_DISPATCH" > agent-work.txt && git add agent-work.txt && '
    'git commit -qm "agent work" && git aipass reply "$AIPASS_DISPATCH" "done from my desk"'
)


@pytest.fixture(scope="module")
def clis() -> None:
    if reason := real_clis.skip_reason():
        pytest.skip(reason)


@pytest.fixture
def real_repo(mail_repo: Path, clis, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The mail repository with agents on each real provider, the default argv untouched."""
    monkeypatch.setenv("PATH", f"{real_clis.cli_path('claude').parent}{os.pathsep}{os.environ['PATH']}")
    configure(mail_repo, retry_backoff_seconds="0", rate_limit_backoff_seconds="0.5")
    for kind, agent in AGENT_OF.items():
        path = mail_repo / f".aipass/agents/{agent}/passport.json"
        doc = json.loads(path.read_text())
        doc["provider"] = kind
        path.write_text(json.dumps(doc))
    git(mail_repo, "commit", "-qam", "agents on the real providers")
    return mail_repo


def point_at(kind: str, api: MockAPI, home: Path, monkeypatch: pytest.MonkeyPatch, retries: int | None = None) -> None:
    """The supervisor passes its environment on to the CLI: set it as a user would."""
    for key, value in real_clis.prepare(kind, api.url, home, retries=retries).items():
        monkeypatch.setenv(key, value)


@kinds
def test_a_session_longer_than_the_startup_timeout_works_and_the_agent_replies_and_commits(
        kind: str, real_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli):
    agent = AGENT_OF[kind]
    configure(real_repo, startup_seconds="8")
    # the model "thinks" longer than the start-up timeout before its first answer
    script = [slow(10, shell(WORK)), text("Committed and replied.")]
    with MockAPI(VENDOR_OF[kind], script) as api:
        point_at(kind, api, tmp_path / "home", monkeypatch)
        sent, outcome = run_dispatch(real_repo, agent, "write the work file", "please", timeout=240)
    assert outcome["result"] == "ok" and outcome["replied"] is True, outcome
    [exit_event] = [e for e in events(real_repo, sent.message["id"]) if e["event"] == "exit"]
    assert exit_event["reason"] == "ok" and exit_event["seconds"] > 8  # it outlived startup_seconds
    [reply] = [m for m in mailbox(cli, real_repo) if m["in_reply_to"] == sent.message["id"]]
    assert reply["from"] == agent and reply["kind"] == "reply"
    assert json.loads(cli("read", reply["id"], "--json", cwd=real_repo).out)["body"] == "done from my desk"
    branch = f"aipass/{agent}"
    assert git(real_repo, "log", "-1", "--format=%an <%ae>|%cn", branch, "--", "agent-work.txt") == \
        f"{agent} <{agent}@aipass.invalid>|Test Human"
    assert [r.turn for r in api.main_requests] == [0, 1]


@kinds
def test_a_rate_limited_start_is_retried_after_the_rate_limit_backoff(
        kind: str, real_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    script = Script([text("Worked the second time.")], rate_limit_sessions=1)
    with MockAPI(VENDOR_OF[kind], script) as api:
        point_at(kind, api, tmp_path / "home", monkeypatch, retries=0)
        sent, outcome = run_dispatch(real_repo, AGENT_OF[kind], timeout=240)
    assert outcome["result"] == "ok", outcome
    exits = [e for e in events(real_repo, sent.message["id"]) if e["event"] == "exit"]
    assert [(e["reason"], e["rate_limited"]) for e in exits][-1] == ("ok", False)
    assert exits[0]["rate_limited"] is True and exits[0]["reason"] in ("error-result", "exit")
    backoffs = [e for e in events(real_repo, sent.message["id"]) if e["event"] == "backoff"]
    assert backoffs[0] == {**backoffs[0], "rate_limited": True, "seconds": 0.5}
    assert len(script.sessions) == 2


@kinds
def test_a_200_kb_task_reaches_the_model_whole(kind: str, real_repo: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch, cli):
    body = "".join(f"line {i:06d} of a long specification\n" for i in range(6000)) + "END-OF-TASK-7c1e"
    assert 131072 < len(body) < 262144  # over one argument's limit, under body_max_bytes
    with MockAPI(VENDOR_OF[kind], [text("Read it all; the last line says END-OF-TASK-7c1e.")]) as api:
        point_at(kind, api, tmp_path / "home", monkeypatch)
        sent, outcome = run_dispatch(real_repo, AGENT_OF[kind], "read the spec", body, timeout=240)
    assert outcome["result"] == "ok", outcome
    assert "END-OF-TASK-7c1e" in json.dumps(api.main_requests[0].body)
    [notice] = [m for m in mailbox(cli, real_repo) if m["in_reply_to"] == sent.message["id"]]
    said = json.loads(cli("read", notice["id"], "--json", cwd=real_repo).out)["body"]
    assert "Read it all; the last line says END-OF-TASK-7c1e." in said  # the agent's final words
