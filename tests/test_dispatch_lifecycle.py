"""Dispatch where real use breaks it: tool processes that outlive kills, big and hostile
task bodies, dead supervisors, cancel, stalls, the outcome text, and who commits.

Supervisors are killed at named moments (the state says "running" and the fake CLI has
written its pid), never after a guessed sleep.
"""

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
from conftest import BIN_DIR, git, main_in
from dispatching import (  # noqa: F401 - fixtures
    alive, answers, calls, configure, drepo, events, fake_cli, mailbox, pids, plan, run_dispatch, state_is, wait_for,
)

from aipass_git.core.repo import discover
from aipass_git.dispatch import dispatcher


def running_with_pid(repo: Path, record: Path, agent: str) -> dict:
    """Wait until AGENT's session runs and its fake CLI has written its pid; its state."""
    wait_for(lambda: (record / f"stuck-{agent}.pid").exists(), "the fake CLI to start")
    return wait_for(lambda: state_is(repo, agent, "running"), "the state to say running")


def finished_events(repo: Path, dispatch_id: str) -> list[dict]:
    return [e for e in events(repo, dispatch_id) if e["event"] == "finished"]


def body_of(cli, repo: Path, message_id: str) -> str:
    return json.loads(cli("read", message_id, "--json", cwd=repo).out)["body"]


# -- the whole process tree of an attempt -----------------------------------------------


def test_tool_processes_in_their_own_session_die_with_their_attempt(drepo: Path, fake_cli: Path):
    plan(fake_cli, "api", "tool-ok")
    sent, outcome = run_dispatch(drepo, "api")
    assert outcome["result"] == "ok"
    [tool] = pids(fake_cli / "tools-api")
    assert not alive(tool), "a tool process outlived its attempt"
    [exit_event] = [e for e in events(drepo, sent.message["id"]) if e["event"] == "exit"]
    assert exit_event["killed"] == 1


def test_a_stalled_session_is_restarted_and_no_two_attempts_share_the_desk(drepo: Path, fake_cli: Path):
    configure(drepo, stall_seconds="0.5")
    plan(fake_cli, "api", "tool-stuck", "ok")
    sent, outcome = run_dispatch(drepo, "api")
    assert outcome["result"] == "ok"
    exits = [e for e in events(drepo, sent.message["id"]) if e["event"] == "exit"]
    assert [e["reason"] for e in exits] == ["stall-timeout", "ok"]
    stuck = int((fake_cli / "stuck-api.pid").read_text())
    [tool] = pids(fake_cli / "tools-api")
    assert not alive(stuck) and not alive(tool)
    assert exits[0]["killed"] == 1  # the tool; the CLI itself is not a leftover


# -- task bodies that used to crash the supervisor ---------------------------------------


def test_a_200_kb_task_goes_by_standard_input(drepo: Path, fake_cli: Path):
    body = ("x" * 99 + "\n") * 2000  # 200 KB: over one argument's 128 KiB, under body_max_bytes
    plan(fake_cli, "api", "ok")
    sent, outcome = run_dispatch(drepo, "api", body=body)
    assert outcome["result"] == "ok"
    [call] = calls(fake_cli)
    assert body.strip() in call["stdin"] and all(len(a) < 1000 for a in call["argv"])


def test_a_prompt_too_big_for_an_argument_bounces_once_and_the_queue_goes_on(drepo: Path, fake_cli: Path, cli):
    config = drepo / ".aipass/config.yaml"
    text = config.read_text().replace("argv: [claude, -p,", 'argv: [claude, "{prompt}", -p,')
    config.write_text(text.replace("    stdin: prompt\n    model_args: [--model", "    model_args: [--model", 1))
    plan(fake_cli, "api", "ok")
    big, small = "y" * 200_000, "short"
    first = dispatcher.dispatch(discover(drepo), "api", "big", big)
    second = dispatcher.dispatch(discover(drepo), "api", "small", small)
    outcome = dispatcher.wait(discover(drepo), first.message["id"], timeout=60)
    assert outcome["result"] == "bounced" and "one argument may hold" in outcome["reason"]
    assert "could not be started" in outcome["reason"] and "stdin: prompt" in outcome["reason"]
    assert [e["reason"] for e in events(drepo, first.message["id"]) if e["event"] == "exit"] == ["start-failed"]
    assert dispatcher.wait(discover(drepo), second.message["id"], timeout=60)["result"] == "ok"
    [bounce] = answers(cli, drepo, first.message["id"])
    assert bounce["kind"] == "bounce"


def test_a_nul_byte_in_a_task_is_refused_before_anything_is_written(drepo: Path, fake_cli: Path, cli):
    before = git(drepo, "for-each-ref", "refs/aipass/")
    result = cli("dispatch", "@api", "task", "a\0b", cwd=drepo)
    assert result.code == 2 and "NUL byte" in result.err and "hint:" in result.err
    assert git(drepo, "for-each-ref", "refs/aipass/") == before and calls(fake_cli) == []


# -- a supervisor that dies ----------------------------------------------------------------


def test_after_kill_9_of_the_supervisor_the_queue_drains_and_each_sender_hears_once(drepo: Path, fake_cli: Path, cli):
    plan(fake_cli, "api", "tool-stuck", "ok")
    repo = discover(drepo)
    first = dispatcher.dispatch(repo, "api", "first", "b")
    state = running_with_pid(drepo, fake_cli, "api")
    later = [dispatcher.dispatch(repo, "api", name, "b") for name in ("second", "third")]
    os.kill(state["pid"], signal.SIGKILL)
    # nobody dispatches again: the waiter notices the dead supervisor and restarts the queue
    outcomes = [dispatcher.wait(repo, s.message["id"], timeout=60, agent="api") for s in (first, *later)]
    assert [o["result"] for o in outcomes] == ["ok", "ok", "ok"]
    stuck = int((fake_cli / "stuck-api.pid").read_text())
    [tool] = pids(fake_cli / "tools-api")
    assert not alive(stuck) and not alive(tool), "a process of the killed attempt survived"
    for sent in (first, *later):
        assert len(answers(cli, drepo, sent.message["id"])) == 1
        assert len(finished_events(drepo, sent.message["id"])) == 1
    crashed = [e for e in events(drepo, first.message["id"]) if e["event"] == "crashed"]
    assert [e["will"] for e in crashed] == ["retry"]
    run = next(e["run"] for e in events(drepo, first.message["id"]) if e["event"] == "start" and e["attempt"] == 1
               and e["run"] != state["run_dir"])
    assert "a supervisor died while running this task before" in (Path(run) / "prompt.md").read_text()


def test_a_dispatch_whose_supervisor_keeps_dying_is_bounced_as_crashed(drepo: Path, fake_cli: Path, cli):
    configure(drepo, crash_retries="0")
    plan(fake_cli, "api", "stuck")
    repo = discover(drepo)
    sent = dispatcher.dispatch(repo, "api", "doomed", "b")
    os.kill(running_with_pid(drepo, fake_cli, "api")["pid"], signal.SIGKILL)
    outcome = dispatcher.wait(repo, sent.message["id"], timeout=60, agent="api")
    assert outcome["result"] == "crashed" and "died 1 time " in outcome["reason"]
    [bounce] = answers(cli, drepo, sent.message["id"])
    assert bounce["kind"] == "bounce" and "crash_retries" in body_of(cli, drepo, bounce["id"])
    assert len(calls(fake_cli)) == 1


def test_wait_returns_when_the_supervisor_died_after_the_agent_replied(drepo: Path, fake_cli: Path, cli):
    plan(fake_cli, "api", "reply-stuck")
    repo = discover(drepo)
    sent = dispatcher.dispatch(repo, "api", "answer me", "b")
    os.kill(running_with_pid(drepo, fake_cli, "api")["pid"], signal.SIGKILL)
    outcome = dispatcher.wait(repo, sent.message["id"], timeout=60, agent="api")
    assert outcome["result"] == "crashed" and outcome["replied"] is True and outcome["answer"] == "reply"
    assert [m["kind"] for m in answers(cli, drepo, sent.message["id"])] == ["reply"]
    assert len(calls(fake_cli)) == 1


def test_a_command_that_touches_the_agent_restarts_its_stalled_queue(drepo: Path, fake_cli: Path, cli):
    plan(fake_cli, "api", "stuck", "ok")
    repo = discover(drepo)
    sent = dispatcher.dispatch(repo, "api", "first", "b")
    os.kill(running_with_pid(drepo, fake_cli, "api")["pid"], signal.SIGKILL)
    assert cli("send", "@api", "a note", "not a dispatch", cwd=drepo).code == 0
    # no waiter here: the send alone brought the queue back
    [done] = wait_for(lambda: finished_events(drepo, sent.message["id"]), "the dispatch to finish", 60)
    assert done["result"] == "ok"
    assert any(e["event"] == "recovered" for e in events(drepo, sent.message["id"]))


# -- cancel -----------------------------------------------------------------------------


def test_cancel_stops_a_running_dispatch_with_its_tools_and_tells_the_sender(drepo: Path, fake_cli: Path, cli):
    plan(fake_cli, "api", "tool-stuck", "ok")
    repo = discover(drepo)
    sent = dispatcher.dispatch(repo, "api", "long job", "b")
    running_with_pid(drepo, fake_cli, "api")
    result = cli("cancel", "@api", "--json", cwd=drepo)
    assert result.code == 0, result.err
    doc = json.loads(result.out)
    assert doc["running"] is True and doc["outcome"]["result"] == "cancelled"
    stuck = int((fake_cli / "stuck-api.pid").read_text())
    [tool] = pids(fake_cli / "tools-api")
    assert not alive(stuck) and not alive(tool)
    assert dispatcher.wait(repo, sent.message["id"], timeout=10)["result"] == "cancelled"
    [notice] = answers(cli, drepo, sent.message["id"])
    assert notice["subject"] == "cancelled: long job" and "cancelled by @human" in body_of(cli, drepo, notice["id"])
    assert run_dispatch(drepo, "api")[1]["result"] == "ok"  # the agent is free again


def test_cancel_takes_a_queued_dispatch_back_before_it_starts(drepo: Path, fake_cli: Path, cli):
    plan(fake_cli, "api", "stuck")
    repo = discover(drepo)
    first = dispatcher.dispatch(repo, "api", "first", "b")
    running_with_pid(drepo, fake_cli, "api")
    queued = dispatcher.dispatch(repo, "api", "second", "b")
    result = cli("cancel", "@api", queued.message["id"][:12], cwd=drepo)
    assert result.code == 0 and "taken out of the queue" in result.out
    assert dispatcher.wait(repo, queued.message["id"], timeout=10)["result"] == "cancelled"
    assert cli("cancel", "@api", cwd=drepo).code == 0  # the running one
    assert dispatcher.wait(repo, first.message["id"], timeout=10)["result"] == "cancelled"
    assert [c["env"]["AIPASS_DISPATCH"] for c in calls(fake_cli)] == [first.message["id"]]


def test_cancel_is_refused_to_others_and_when_nothing_runs(drepo: Path, fake_cli: Path, cli):
    assert cli("cancel", "@api", cwd=drepo).code == 2
    plan(fake_cli, "api", "stuck")
    sent = dispatcher.dispatch(discover(drepo), "api", "mine", "b")
    running_with_pid(drepo, fake_cli, "api")
    refused = cli("cancel", "@api", env={"AIPASS_AGENT": "docs"}, cwd=drepo)
    assert refused.code == 2 and "may not cancel" in refused.err
    assert cli("cancel", "@api", sent.message["id"], cwd=drepo).code == 0


def test_status_shows_attempt_backoff_and_queue_and_cancel_ends_a_backoff(drepo: Path, fake_cli: Path, cli):
    configure(drepo, retry_backoff_seconds="600")
    plan(fake_cli, "api", "crash", "ok")
    repo = discover(drepo)
    sent = dispatcher.dispatch(repo, "api", "flaky", "b")
    queued = dispatcher.dispatch(repo, "api", "next", "b")
    wait_for(lambda: state_is(drepo, "api", "backoff"), "the backoff after the first crash")
    [row] = [r for r in json.loads(cli("status", "--json", cwd=drepo).out)["agents"] if r["agent"] == "api"]
    assert (row["state"], row["attempt"], row["attempts"], row["queued"]) == ("backoff", 1, 4, 1)
    assert 0 < row["backoff_seconds"] <= 600 and row["dispatch"] == sent.message["id"]
    table = cli("status", cwd=drepo).out
    assert "BACKOFF" in table and "1/4" in table
    assert cli("cancel", "@api", cwd=drepo).code == 0
    assert dispatcher.wait(repo, sent.message["id"], timeout=10)["result"] == "cancelled"
    assert dispatcher.wait(repo, queued.message["id"], timeout=60)["result"] == "ok"


def test_wait_timeout_has_its_own_exit_code(drepo: Path, fake_cli: Path, cli):
    plan(fake_cli, "api", "stuck")
    result = cli("dispatch", "@api", "slow", "b", "--wait", "--timeout", "0.3", cwd=drepo)
    assert result.code == 124 and "did not finish within 0.3 s" in result.err
    wait_for(lambda: state_is(drepo, "api", "running"), "the run to go on after the wait gave up")
    assert cli("cancel", "@api", cwd=drepo).code == 0


# -- what the sender learns ----------------------------------------------------------------


def test_the_final_words_and_api_errors_reach_the_sender(drepo: Path, fake_cli: Path, cli):
    plan(fake_cli, "api", "said")
    sent, _ = run_dispatch(drepo, "api")
    [notice] = answers(cli, drepo, sent.message["id"])
    assert "I fixed the parser; tests pass." in body_of(cli, drepo, notice["id"])
    configure(drepo, retries="0")
    plan(fake_cli, "api", "apierror")
    sent, outcome = run_dispatch(drepo, "api")
    assert outcome["result"] == "bounced" and "rate limit" in outcome["reason"]
    [bounce] = answers(cli, drepo, sent.message["id"])
    body = body_of(cli, drepo, bounce["id"])
    assert "What the provider said last:" in body and "rate_limit_error" in body
    backoffs = [e for e in events(drepo, sent.message["id"]) if e["event"] == "backoff"]
    assert backoffs and all(b["rate_limited"] for b in backoffs)


def test_a_turn_limit_is_not_retried(drepo: Path, fake_cli: Path):
    plan(fake_cli, "api", "turns")
    sent, outcome = run_dispatch(drepo, "api")
    assert outcome["result"] == "bounced" and "turn limit" in outcome["reason"]
    assert len(calls(fake_cli)) == 1


# -- who commits ---------------------------------------------------------------------------


def test_the_agents_commits_are_authored_by_the_agent(drepo: Path, fake_cli: Path):
    plan(fake_cli, "api", "commit")
    sent, outcome = run_dispatch(drepo, "api")
    desk = Path(calls(fake_cli)[0]["cwd"])
    work = git(desk, "log", "-1", "--format=%an <%ae>|%cn <%ce>", "--", "fake-work.txt")
    assert work == "api <api@aipass.invalid>|Test Human <human@example.invalid>"
    assert git(drepo, "log", "--format=%s", "--author=api@aipass.invalid", "aipass/api", "--", "fake-work.txt") == "fake work"


def test_without_a_configured_identity_the_agent_commits_as_itself(drepo: Path, fake_cli: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch):
    bare = tmp_path / "no-user.gitconfig"
    bare.write_text("[user]\n\tuseConfigOnly = true\n[init]\n\tdefaultBranch = main\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(bare))
    # the human is known from the environment only, as in CI and containers
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Env Human")
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "env@example.invalid")
    with monkeypatch.context() as setup:  # init commits a signing key for this human
        for var, value in (("GIT_COMMITTER_NAME", "Env Human"), ("GIT_COMMITTER_EMAIL", "env@example.invalid")):
            setup.setenv(var, value)
        assert main_in(drepo, "init") == 0  # a key for this human, who signs the dispatch
    plan(fake_cli, "api", "commit")
    _, outcome = run_dispatch(drepo, "api")
    assert outcome["result"] == "ok"
    desk = Path(calls(fake_cli)[0]["cwd"])
    assert git(desk, "log", "-1", "--format=%an|%cn", "--", "fake-work.txt") == "api|api"
    # the supervisor's session entry on the desk is the agent's too (the branch rule reads authors)
    assert git(desk, "log", "-1", "--format=%an %ae", "--", ".aipass/agents/api/memory.json") == "api api@aipass.invalid"


def test_as_root_claude_without_its_sandbox_variable_is_refused_at_once(drepo: Path, fake_cli: Path, cli,
                                                                       monkeypatch: pytest.MonkeyPatch):
    config = drepo / ".aipass/config.yaml"
    config.write_text(config.read_text().replace('    env: {IS_SANDBOX: "1"}\n', ""))
    monkeypatch.delenv("IS_SANDBOX", raising=False)
    if os.geteuid() != 0:
        monkeypatch.setattr(os, "geteuid", lambda: 0)  # the rule is about root; judge it as root
    before = git(drepo, "for-each-ref", "refs/aipass/")
    result = cli("dispatch", "@api", "task", "b", cwd=drepo)
    assert result.code == 2 and "refuses" in result.err and "bypassPermissions" in result.err
    assert "IS_SANDBOX" in result.err and git(drepo, "for-each-ref", "refs/aipass/") == before
    assert cli("dispatch", "@docs", "task", "b", cwd=drepo).code == 0  # codex has no such rule
    monkeypatch.setenv("IS_SANDBOX", "1")  # the user's own choice, in their environment
    assert cli("dispatch", "@api", "task", "b", "--wait", cwd=drepo).code == 0


def test_a_supervisor_killed_inside_a_state_write_is_recovered(drepo: Path, fake_cli: Path, cli):
    from aipass_git.setup import leftovers

    plan(fake_cli, "api", "ok")
    proc = subprocess.run([str(BIN_DIR / "git-aipass"), "dispatch", "@api", "task", "b", "--json"], cwd=drepo,
                          capture_output=True, text=True, env={**os.environ, "AIPASS_FAULT": "temp-written"})
    assert proc.returncode == 0, proc.stderr  # the dispatch itself writes no state file
    sent = json.loads(proc.stdout)["dispatch"]
    # its supervisor died at its first state write, leaving the temporary file behind
    runtime_agents = Path(git(drepo, "rev-parse", "--path-format=absolute", "--git-common-dir")) / "aipass/agents/api"
    wait_for(lambda: list(runtime_agents.glob("*.aipass-tmp")), "the killed supervisor's temporary file")
    outcome = dispatcher.wait(discover(drepo), sent["id"], timeout=60, agent="api")
    assert outcome["result"] == "ok"
    assert not list(runtime_agents.glob("*.aipass-tmp"))  # the next write of the state removed it
    assert [l for l in leftovers.find(discover(drepo)) if l.kind != "archive-duplicate"] == []
