"""Dispatch with fake AI CLIs on PATH: argv, desk, identity, watchdog, queue, recovery."""

import json
import os
from pathlib import Path

import pytest
from conftest import git, make_desk
from dispatching import (  # noqa: F401 - fixtures
    calls, drepo, events, fake_cli, mailbox, plan, run_dispatch, state_is, wait_for,
)

from aipass_git.core.repo import discover
from aipass_git.dispatch import dispatcher


def test_each_provider_gets_its_exact_argv_on_the_desk_with_identity(drepo: Path, fake_cli: Path):
    outcomes = {}
    for agent in ("api", "docs", "quality"):
        sent, outcomes[agent] = run_dispatch(drepo, agent, f"task for {agent}", "the details")
    assert {o["result"] for o in outcomes.values()} == {"ok"}
    by_program = {c["program"]: c for c in calls(fake_cli)}
    runs = {e["agent"]: Path(e["run"]) for e in events(drepo) if e["event"] == "start"}
    prompt = {a: (runs[a] / "prompt.md").read_text() for a in runs}
    assert by_program["claude"]["argv"] == ["-p", "--output-format", "stream-json", "--verbose", "--permission-mode",
                                            "bypassPermissions", "--model", "opus"]
    assert by_program["codex"]["argv"] == ["exec", "--json", "--dangerously-bypass-approvals-and-sandbox",
                                           "-c", "allow_login_shell=false", "-"]
    assert by_program["gemini"]["argv"] == ["--output-format", "stream-json", "--approval-mode=yolo", "--skip-trust"]
    for program, agent in (("claude", "api"), ("codex", "docs"), ("gemini", "quality")):
        assert by_program[program]["stdin"] == prompt[agent]  # the prompt comes on standard input
    common = Path(git(drepo, "rev-parse", "--path-format=absolute", "--git-common-dir"))
    for program, agent in (("claude", "api"), ("codex", "docs"), ("gemini", "quality")):
        call = by_program[program]
        assert Path(call["cwd"]) == common / "aipass" / "desks" / agent
        assert call["env"]["AIPASS_AGENT"] == agent and call["env"]["AIPASS_REPO"] == str(drepo)
        assert call["env"]["AIPASS_DISPATCH"] in prompt[agent]
        assert git(Path(call["cwd"]), "rev-parse", "--abbrev-ref", "HEAD") == f"aipass/{agent}"


def test_the_prompt_carries_passport_readme_inbox_task_and_protocol(drepo: Path, fake_cli: Path, cli):
    cli("send", "@api", "an older question", "still open", cwd=drepo)
    sent, _ = run_dispatch(drepo, "api", "fix the price format", "prices must show two decimals")
    run = next(Path(e["run"]) for e in events(drepo, sent.message["id"]) if e["event"] == "start")
    text = (run / "prompt.md").read_text()
    for needle in ("# You are @api", "Role: builds the API", "## Your domain notes (README)", "an older question",
                   "Subject: fix the price format", "prices must show two decimals",
                   f"git aipass reply {sent.message['id']}", "git aipass pr open", "git aipass memory add",
                   "@devpulse merges"):
        assert needle in text, needle


def short_startup(repo: Path) -> None:
    config = repo / ".aipass/config.yaml"
    config.write_text(config.read_text().replace("startup_seconds: 30", "startup_seconds: 0.6"))


def test_a_silent_provider_is_retried_started_fresh_and_bounced(drepo: Path, fake_cli: Path, cli):
    short_startup(drepo)
    plan(fake_cli, "api", "hang")
    sent, outcome = run_dispatch(drepo, "api")
    assert outcome["result"] == "bounced" and "no output or progress" in outcome["reason"]
    starts = [e for e in events(drepo, sent.message["id"]) if e["event"] == "start"]
    assert [s["fresh"] for s in starts] == [False, False, False, True]  # 1 + 2 retries, then fresh
    assert {e["reason"] for e in events(drepo, sent.message["id"]) if e["event"] == "exit"} == {"startup-timeout"}
    [bounce] = [m for m in mailbox(cli, drepo) if m["kind"] == "bounce"]
    assert bounce["in_reply_to"] == sent.message["id"] and bounce["from"] == "api"
    full = json.loads(cli("read", bounce["id"], "--json", cwd=drepo).out)
    assert "Reason: the provider showed no output" in full["body"] and "Log: " in full["body"]
    assert [m["status"] for m in mailbox(cli, drepo, "@api")] == ["done"]


def test_a_crash_then_success_sends_a_notice_with_the_outcome(drepo: Path, fake_cli: Path, cli):
    plan(fake_cli, "api", "crash", "commit")
    sent, outcome = run_dispatch(drepo, "api")
    assert outcome["result"] == "ok" and outcome["commits"] == 1 and outcome["replied"] is False
    [notice] = [m for m in mailbox(cli, drepo) if m["kind"] == "notice"]
    body = json.loads(cli("read", notice["id"], "--json", cwd=drepo).out)["body"]
    assert "Exit code: 0" in body and "Commits on aipass/api: 1" in body and "fake work" in body
    assert [c["mode"] for c in calls(fake_cli)] == ["crash", "commit"]


def test_exit_codes_and_stderr_reach_the_bounce(drepo: Path, fake_cli: Path, cli):
    plan(fake_cli, "api", "crash")
    sent, outcome = run_dispatch(drepo, "api")
    assert outcome["result"] == "bounced" and outcome["exit_code"] == 3
    [bounce] = [m for m in mailbox(cli, drepo) if m["kind"] == "bounce"]
    body = json.loads(cli("read", bounce["id"], "--json", cwd=drepo).out)["body"]
    assert "exited with code 3" in body and "fatal: the fake crashed" in body


def test_an_error_result_with_exit_zero_counts_as_failure(drepo: Path, fake_cli: Path):
    plan(fake_cli, "api", "error", "ok")
    sent, outcome = run_dispatch(drepo, "api")
    reasons = [e["reason"] for e in events(drepo, sent.message["id"]) if e["event"] == "exit"]
    assert reasons == ["error-result", "ok"] and outcome["result"] == "ok"


def test_rate_limits_get_the_longer_backoff(drepo: Path, fake_cli: Path):
    plan(fake_cli, "api", "ratelimit", "ok")
    sent, outcome = run_dispatch(drepo, "api")
    assert outcome["result"] == "ok"
    [backoff] = [e for e in events(drepo) if e["event"] == "backoff"]
    assert backoff["rate_limited"] is True and backoff["seconds"] == 0.2


def test_the_agents_reply_reaches_the_sender_without_a_notice(drepo: Path, fake_cli: Path, cli):
    plan(fake_cli, "api", "reply")
    sent, outcome = run_dispatch(drepo, "api")
    assert outcome["replied"] is True
    kinds = [m["kind"] for m in mailbox(cli, drepo)]
    assert kinds == ["reply"]


def test_a_busy_agent_queues_and_runs_one_session_at_a_time(drepo: Path, fake_cli: Path):
    plan(fake_cli, "api", "gated")
    repo = discover(drepo)
    first = dispatcher.dispatch(repo, "api", "one", "b")
    wait_for(lambda: state_is(drepo, "api", "running"), "the first session to start")
    later = [dispatcher.dispatch(repo, "api", name, "b") for name in ("two", "three")]
    assert first.state == "started" and [l.state for l in later] == ["queued", "queued"]
    (fake_cli / "release-api").touch()  # the first session may end now
    for sent in (first, *later):
        assert dispatcher.wait(repo, sent.message["id"], timeout=60)["result"] == "ok"
    runs = sorted(calls(fake_cli), key=lambda c: c["start"])
    assert len(runs) == 3
    for before, after in zip(runs, runs[1:]):
        assert before["end"] <= after["start"], "two sessions of one agent overlapped"
    handled = [c["env"]["AIPASS_DISPATCH"] for c in runs]
    assert handled == [first.message["id"], *(l.message["id"] for l in later)]  # oldest first


def test_a_missing_provider_binary_fails_fast_and_bounces(drepo: Path, fake_cli: Path, cli, monkeypatch):
    bin_dir = Path(os.environ["PATH"].split(os.pathsep)[0])
    (bin_dir / "codex").unlink()
    result = cli("dispatch", "@docs", "task", "b", cwd=drepo)
    assert result.code == 1
    assert "runs 'codex', which is not on PATH" in result.err and "bounced" in result.err and "hint:" in result.err
    [bounce] = [m for m in mailbox(cli, drepo) if m["kind"] == "bounce"]
    assert bounce["from"] == "docs"
    assert [m["status"] for m in mailbox(cli, drepo, "@docs")] == ["done"]
    assert calls(fake_cli) == []


def test_wait_exits_with_the_outcome_and_shorthand_dispatches(drepo: Path, fake_cli: Path, cli):
    plan(fake_cli, "api", "crash")
    failed = cli("dispatch", "@api", "task", "b", "--wait", cwd=drepo)
    assert failed.code == 1 and "bounced" in failed.out
    plan(fake_cli, "api", "ok")
    ok = cli("@api", "refactor the parser\nand keep the tests green", "--wait", "--json", cwd=drepo)
    assert ok.code == 0, ok.err
    doc = json.loads(ok.out)
    assert doc["dispatch"]["subject"] == "refactor the parser"
    assert doc["dispatch"]["body"] == "refactor the parser\nand keep the tests green"
    assert doc["outcome"]["result"] == "ok"


def test_thirty_agents_dispatched_at_once_all_run_and_report(drepo: Path, fake_cli: Path, cli):
    from aipass_git.agents.registry import Registry

    registry = Registry(discover(drepo))
    names = [f"w{i:02d}" for i in range(30)]
    for name in names:
        registry.create(name, role="works", provider="claude")
    repo = discover(drepo)
    sent = [dispatcher.dispatch(repo, name, f"job {name}", "b") for name in names]
    outcomes = [dispatcher.wait(repo, s.message["id"], timeout=180) for s in sent]
    assert [o["result"] for o in outcomes] == ["ok"] * 30
    assert sorted(c["env"]["AIPASS_AGENT"] for c in calls(fake_cli)) == names
    notices = [m for m in mailbox(cli, drepo) if m["kind"] == "notice"]
    assert len(notices) == 30


def test_a_dirty_desk_is_left_alone_and_a_merged_one_updated(drepo: Path, fake_cli: Path):
    run_dispatch(drepo, "api")
    common = Path(git(drepo, "rev-parse", "--path-format=absolute", "--git-common-dir"))
    desk = common / "aipass/desks/api"
    # merged and behind: brought up to date before the next wake
    git(drepo, "merge", "-q", "--no-edit", "aipass/api")
    (drepo / "new-on-main.txt").write_text("x")
    git(drepo, "add", "new-on-main.txt")
    git(drepo, "commit", "-qm", "main moves on")
    sent, _ = run_dispatch(drepo, "api")
    assert git(desk, "merge-base", "--is-ancestor", "main", "HEAD", check=False) == ""  # main is in the desk
    assert any("brought up to date" in e.get("note", "") for e in events(drepo, sent.message["id"]))
    git(drepo, "merge", "-q", "--no-edit", "aipass/api")
    # dirty: left as it is, and the wake says so in the prompt
    (desk / "scratch.txt").write_text("unsaved work")
    (drepo / "more.txt").write_text("y")
    git(drepo, "add", "more.txt")
    git(drepo, "commit", "-qm", "main moves again")
    sent, _ = run_dispatch(drepo, "api")
    assert git(desk, "rev-parse", "HEAD") != git(drepo, "rev-parse", "main")
    assert (desk / "scratch.txt").read_text() == "unsaved work"
    run = next(Path(e["run"]) for e in events(drepo, sent.message["id"]) if e["event"] == "start")
    assert "uncommitted changes" in (run / "prompt.md").read_text()


# -- bad input ---------------------------------------------------------------------------


def refs_state(repo: Path) -> str:
    return git(repo, "for-each-ref", "refs/aipass/")


@pytest.mark.parametrize(
    "edit, args, words",
    [
        (None, ["@ghost", "t", "b"], "no agent named 'ghost'"),
        ("retire", ["@docs", "t", "b"], "retired"),
        ("provider", ["@api", "t", "b"], "provider 'nope' is not configured"),
        ("placeholder", ["@api", "t", "b"], "unknown placeholder {prompt_text}"),
        ("timeout", ["@api", "t", "b"], "timeouts.startup_seconds"),
        ("timeout-text", ["@api", "t", "b"], "timeouts.run_seconds"),
    ],
)
def test_bad_dispatches_are_refused_and_write_nothing(drepo: Path, fake_cli: Path, cli, edit, args, words):
    config = drepo / ".aipass/config.yaml"
    if edit == "retire":
        cli("agent", "retire", "docs", cwd=drepo)
    elif edit == "provider":
        path = drepo / ".aipass/agents/api/passport.json"
        doc = json.loads(path.read_text())
        doc["provider"] = "nope"
        path.write_text(json.dumps(doc))
    elif edit == "placeholder":
        config.write_text(config.read_text().replace('argv: [claude, -p,', 'argv: [claude, -p, "{prompt_text}",'))
    elif edit == "timeout":
        config.write_text(config.read_text().replace("startup_seconds: 30", "startup_seconds: 0"))
    elif edit == "timeout-text":
        config.write_text(config.read_text().replace("run_seconds: 7200", "run_seconds: two hours"))
    before = refs_state(drepo)
    result = cli("dispatch", *args, cwd=drepo)
    assert result.code == 2, result.err
    assert words in result.err and "hint:" in result.err
    assert refs_state(drepo) == before
    assert calls(fake_cli) == []


def test_an_agent_cannot_dispatch_to_itself(drepo: Path, fake_cli: Path, cli):
    desk = make_desk(drepo, "api")
    before = refs_state(drepo)
    result = cli("dispatch", "@api", "t", "b", cwd=desk)
    assert result.code == 2 and "cannot dispatch to itself" in result.err
    assert refs_state(drepo) == before
