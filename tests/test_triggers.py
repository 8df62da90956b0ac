"""Triggers: rules in .aipass/triggers.yaml fire on events where they happen, schedules tick
by a clock the tests set, loops trip the breaker, sweeps wake and tell, the daemon catches
up exactly once, and the hooks fire rules with no daemon running."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from conftest import git
from dispatching import calls, drepo, fake_cli, plan as plan_runs, run_dispatch, wait_for  # noqa: F401 - fixtures

from aipass_git.core import program
from aipass_git.core.repo import discover
from aipass_git.dispatch.runtime import Runtime
from aipass_git.triggers import engine

T0 = datetime(2026, 12, 1, 12, 0, 30, tzinfo=timezone.utc)


def rules(repo: Path, text: str) -> None:
    (repo / ".aipass/triggers.yaml").write_text(text)


def quiet_kicks(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Kicks from this test's own commands only mark a sweep as wanted: the test runs the
    sweeps itself, on the clock it chooses."""
    monkeypatch.setenv(program.SWEEPING, str(discover(repo).root))


def inbox(cli, repo: Path, owner: str) -> list[dict]:
    return json.loads(cli("inbox", owner, "--all", "--json", cwd=repo).out)["messages"]


def fired(repo: Path) -> list[dict]:
    return [e for e in Runtime(discover(repo)).events() if e.get("event") in ("fired", "rule-held")]


def test_the_review_rule_works_as_written(drepo: Path, fake_cli: Path, cli):  # noqa: F811
    rules(drepo, """rules:
  - name: review every PR
    on: pr.opened
    do:
      - dispatch: "@reviewer"
        task: "Review PR {pr.id}: {pr.title}"
""")
    assert cli("agent", "new", "reviewer", "--role", "reviews PRs", "--provider", "claude", cwd=drepo).code == 0
    git(drepo, "add", ".aipass")
    git(drepo, "commit", "-qm", "a reviewer and its rule")
    assert cli("triggers", "check", cwd=drepo).code == 0
    plan_runs(fake_cli, "api", "pr")
    assert cli("dispatch", "@api", "build the parser", "the parser", cwd=drepo).code == 0
    pr = wait_for(lambda: json.loads(cli("pr", "list", "--json", cwd=drepo).out)["prs"], "the PR")[0]
    review = wait_for(lambda: [c for c in calls(fake_cli) if c["env"]["AIPASS_AGENT"] == "reviewer"], "the review", 60)[0]
    [task] = [m for m in inbox(cli, drepo, "@reviewer") if m["id"] == review["env"]["AIPASS_DISPATCH"]]
    assert task["subject"] == f"Review PR {pr['id']}: {pr['title']}" and task["from"] == "devpulse"
    [firing] = [e for e in fired(drepo) if e["event"] == "fired"]
    assert firing["rule"] == "review every PR" and firing["on"] == "pr.opened" and firing["actions"][0]["ok"]
    assert "review every PR" in cli("log", cwd=drepo).out


def test_a_schedule_fires_once_per_minute_and_once_for_ticks_it_missed(mail_repo: Path, cli, monkeypatch):
    quiet_kicks(mail_repo, monkeypatch)
    rules(mail_repo, """rules:
  - name: tick
    on: schedule
    cron: "* * * * *"
    do:
      - mail: "@quality"
        subject: "tick at {time}"
  - name: slow
    on: schedule
    every: 1h
    do:
      - run: [python3, -c, "print('slow ran')"]
""")
    repo = discover(mail_repo)
    at = [T0, T0 + timedelta(seconds=20), T0 + timedelta(seconds=31), T0 + timedelta(seconds=50),
          T0 + timedelta(minutes=10), T0 + timedelta(minutes=10, seconds=5), T0 + timedelta(hours=2)]
    got = [[(f.rule, f.actions[0]["ok"]) for f in engine.sweep(repo, now=t)] for t in at]
    assert got == [[], [], [("tick", True)], [], [("tick", True)], [], [("tick", True), ("slow", True)]]
    ticks = [m["subject"] for m in inbox(cli, mail_repo, "@quality")]
    assert sorted(ticks) == ["tick at 2026-12-01T12:01:01Z", "tick at 2026-12-01T12:10:30Z", "tick at 2026-12-01T14:00:30Z"]
    [slow] = [e for e in fired(mail_repo) if e["rule"] == "slow"]
    assert slow["actions"][0]["detail"] == "exit 0: slow ran"


def test_agents_waking_each_other_trip_the_breaker(mail_repo: Path, cli, monkeypatch):
    quiet_kicks(mail_repo, monkeypatch)
    rules(mail_repo, """rules:
  - name: api answers
    on: mail.delivered
    when: {agent: "@api"}
    do:
      - mail: "@docs"
        subject: "re: {mail.subject}"
    breaker: {trips_after: 3, within_seconds: 60, cooldown_seconds: 300}
  - name: docs answers
    on: mail.delivered
    when: {agent: "@docs"}
    do:
      - mail: "@api"
        subject: "re: {mail.subject}"
    breaker: {trips_after: 3, within_seconds: 60, cooldown_seconds: 300}
""")
    repo = discover(mail_repo)
    engine.sweep(repo, now=T0)  # the start
    assert cli("send", "@api", "ping", "who answers?", cwd=mail_repo).code == 0
    done = engine.sweep(repo, now=T0 + timedelta(seconds=1))
    assert [f.rule for f in done if not f.skipped] == ["api answers", "docs answers"] * 3
    assert sorted(f.rule for f in done if f.skipped == "tripped") == ["api answers"]
    told = [m for m in inbox(cli, mail_repo, "@human") if "stopped" in m["subject"]]
    assert [m["subject"] for m in told] == ["rule 'api answers' stopped: it fired 3 times in 60 s"]
    assert len(inbox(cli, mail_repo, "@api")) == 4 and len(inbox(cli, mail_repo, "@docs")) == 3
    assert engine.sweep(repo, now=T0 + timedelta(seconds=2)) == []  # the loop has stopped


def test_the_inbox_sweep_wakes_an_agent_whose_mail_waits(drepo: Path, fake_cli: Path, cli, monkeypatch):  # noqa: F811
    quiet_kicks(drepo, monkeypatch)
    rules(drepo, "sweeps:\n  inbox: {unread_hours: 24, skip: ['@quality']}\n")
    repo = discover(drepo)
    now = datetime.now(timezone.utc)
    engine.sweep(repo, now=now)
    for who in ("@docs", "@quality"):
        assert cli("send", who, "the style guide", "please read it", cwd=drepo).code == 0
    assert engine.sweep(repo, now=now + timedelta(hours=23)) == []
    [woke] = engine.sweep(repo, now=now + timedelta(hours=25))
    assert woke.rule == "inbox-sweep" and woke.actions[0]["ok"] and woke.actions[0]["action"] == "dispatch @docs"
    [task] = [m for m in inbox(cli, drepo, "@docs") if m["kind"] == "dispatch"]
    assert task["subject"] == "1 unread message waiting over 24 h"
    assert engine.sweep(repo, now=now + timedelta(hours=26)) == []  # once per oldest unread message


def daemon(repo: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "aipass_git", "daemon", "run", "--poll", "0.05"], cwd=repo,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_daemon_killed_and_restarted_catches_up_exactly_once(mail_repo: Path, cli, monkeypatch):
    rules(mail_repo, """rules:
  - name: echo
    on: mail.delivered
    when: {agent: "@quality"}
    do:
      - mail: "@docs"
        subject: "seen: {mail.subject}"
""")
    first = daemon(mail_repo)
    running = wait_for(lambda: json.loads(cli("daemon", "status", "--json", cwd=mail_repo).out)["running"], "the daemon")
    assert running
    second = subprocess.run([sys.executable, "-m", "aipass_git", "daemon", "run"], cwd=mail_repo, capture_output=True, text=True)
    assert second.returncode == 1 and f"pid {first.pid}" in second.stderr
    wait_for(lambda: (engine.state_dir(discover(mail_repo)) / "state.json").exists(), "the daemon's first sweep")
    assert cli("send", "@quality", "one", "first", cwd=mail_repo).code == 0
    wait_for(lambda: [m for m in inbox(cli, mail_repo, "@docs") if m["subject"] == "seen: one"], "the first echo")
    first.send_signal(signal.SIGKILL)
    first.wait()
    quiet_kicks(mail_repo, monkeypatch)  # nobody else sweeps while the daemon is down
    assert cli("send", "@quality", "two", "while down", cwd=mail_repo).code == 0
    monkeypatch.delenv(program.SWEEPING)
    again = daemon(mail_repo)
    try:
        wait_for(lambda: [m for m in inbox(cli, mail_repo, "@docs") if m["subject"] == "seen: two"], "the echo it missed")
        assert cli("daemon", "stop", cwd=mail_repo).code == 0
        assert again.wait(timeout=30) == 0
    finally:
        if again.poll() is None:
            again.kill()
    assert sorted(m["subject"] for m in inbox(cli, mail_repo, "@docs")) == ["seen: one", "seen: two"]
    assert not json.loads(cli("daemon", "status", "--json", cwd=mail_repo).out)["running"]


def test_the_hooks_fire_commit_rules_with_no_daemon(mail_repo: Path, cli):
    assert cli("hooks", "install", cwd=mail_repo).code == 0
    rules(mail_repo, """rules:
  - name: docs changed
    on: commit
    when: {path: "docs/**"}
    do:
      - mail: "@docs"
        subject: "changed: {commit.subject}"
""")
    git(mail_repo, "add", ".aipass/triggers.yaml")
    git(mail_repo, "commit", "-qm", "a rule for the docs")
    (mail_repo / "src").mkdir(exist_ok=True)
    (mail_repo / "src/a.py").write_text("x = 1\n")
    git(mail_repo, "add", "src")
    git(mail_repo, "commit", "-qm", "not the docs")
    (mail_repo / "docs").mkdir(exist_ok=True)
    (mail_repo / "docs/guide.md").write_text("# Guide\n")
    git(mail_repo, "add", "docs")
    git(mail_repo, "commit", "-qm", "a guide")
    told = wait_for(lambda: [m for m in inbox(cli, mail_repo, "@docs") if m["subject"].startswith("changed")], "the rule", 60)
    assert [m["subject"] for m in told] == ["changed: a guide"]


@pytest.mark.parametrize("text, where, what", [
    ("rules:\n  - name: x\n    on: pr.opened\n    do:\n      - mail: '@api'\n        subject: '{pr.nope}'\n",
     "line 6", "{pr.nope} is not a field of pr.opened events"),
    ("rules:\n  - name: x\n    on: schedule\n    do:\n      - mail: '@api'\n        subject: hi\n",
     "line 2", "give it cron or every"),
    ("rules:\n  - name: x\n    on: pr.openned\n    do: []\n", "line 3", "is not one of mail.delivered"),
    ("rules:\n  - name: x\n    on: schedule\n    cron: '61 * * * *'\n    do: []\n", "line 4", "is not a cron expression"),
    ("rules:\n  - name: x\n    on: commit\n    do:\n      - run: [make]\n        mail: '@api'\n", "line 5", "exactly one of"),
    ("rules:\n  - name: x\n    on: pr.opened\n    when: {path: 'src/**'}\n    do: []\n", "line 4", "no path to filter on"),
])
def test_a_wrong_rule_is_refused_naming_its_line(mail_repo: Path, cli, text: str, where: str, what: str):
    rules(mail_repo, text)
    checked = cli("triggers", "check", cwd=mail_repo)
    assert checked.code == 2 and where in checked.err and what in checked.err, checked.err


def test_a_program_that_hangs_is_killed_at_its_timeout_with_what_it_started(mail_repo: Path, monkeypatch, tmp_path):
    quiet_kicks(mail_repo, monkeypatch)
    child = tmp_path / "child.pid"
    rules(mail_repo, f"""rules:
  - name: hangs
    on: schedule
    every: 1m
    do:
      - run: [sh, -c, "sleep 300 & echo $! > {child}; echo $AIPASS_EVENT_RULE; wait"]
        timeout: 1
""")
    repo = discover(mail_repo)
    engine.sweep(repo, now=T0)
    [f] = engine.sweep(repo, now=T0 + timedelta(minutes=2))
    assert f.actions == [{"action": "run sh", "ok": False, "detail": "killed after 1 s"}]
    pid = int(child.read_text())
    wait_for(lambda: not _alive(pid), "the program's child to be gone", 10)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").exists() and Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_the_error_watcher_counts_a_fault_across_runs_and_tells_its_owner(drepo: Path, fake_cli: Path, cli,  # noqa: F811
                                                                         monkeypatch):
    quiet_kicks(drepo, monkeypatch)
    rules(drepo, """rules:
  - name: errors to their owner
    on: error
    repeats: 2
    mute: ["harmless"]
    do:
      - mail: "{agent}"
        subject: "error x{error.count} at {error.where}: {error.message}"
        body: "{error.lines}"
  - name: warning digest
    on: warnings
    pile: 2
    do:
      - mail: "@human"
        subject: "{warnings.count} warnings from @{agent}"
""")
    repo = discover(drepo)
    engine.sweep(repo)
    plan_runs(fake_cli, "api", "traceback", "traceback")
    for i in range(2):
        run_dispatch(drepo, "api", f"task {i}")
        engine.sweep(repo)
    told = [m for m in inbox(cli, drepo, "@api") if m["subject"].startswith("error")]
    assert len(told) == 1 and told[0]["subject"].startswith("error x2 at /work/tool.py:12: ValueError: bad input")
    body = cli("read", told[0]["id"], cwd=drepo, env={"AIPASS_AGENT": "api"}).out
    assert "Traceback (most recent call last):" in body and "parse(data)" in body
    digests = [m["subject"] for m in inbox(cli, drepo, "@human") if "warnings from" in m["subject"]]
    assert digests == ["2 warnings from @api"]


def test_the_stale_dispatch_sweep_tells_the_sender_once(mail_repo: Path, cli, monkeypatch):
    quiet_kicks(mail_repo, monkeypatch)
    rules(mail_repo, "sweeps:\n  stale_dispatch: {hours: 6}\n")
    assert cli("agent", "new", "faraway", "--role", "runs in another clone", "--home", "elsewhere-1", cwd=mail_repo).code == 0
    repo = discover(mail_repo)
    now = datetime.now(timezone.utc)
    engine.sweep(repo, now=now)
    sent = cli("dispatch", "@faraway", "index the docs", "all of them", cwd=mail_repo)
    assert sent.code == 0 and "runs at elsewhere-1" in sent.out
    assert engine.sweep(repo, now=now + timedelta(hours=5)) == []
    [told] = engine.sweep(repo, now=now + timedelta(hours=7))
    assert told.rule == "stale-dispatch" and told.actions[0]["ok"]
    [mail] = [m for m in inbox(cli, mail_repo, "@human") if "waits" in m["subject"]]
    assert mail["subject"].endswith("to @faraway waits: index the docs")
    assert engine.sweep(repo, now=now + timedelta(hours=30)) == []


def test_the_daemon_fails_plan_phases_past_their_timeout(mail_repo: Path, cli):
    from aipass_git.agents.session import Session
    from aipass_git.plans import plan as plan_mod
    from aipass_git.store.events import EventStore

    (mail_repo / ".aipass/plan-templates").mkdir()
    (mail_repo / ".aipass/plan-templates/timed.yaml").write_text(
        'description: "an answer within the hour"\nphases:\n'
        '  - {name: answer, owner: human, task: "answer {title}", timeout_minutes: 60}\n')
    made = json.loads(cli("plan", "new", "the question", "-t", "timed", "--json", cwd=mail_repo).out)["plan"]
    repo = discover(mail_repo)

    def long_ago(doc):  # the phase started long ago: what a clock hours on would see
        doc["phases"][0]["started"] = "2000-01-01T00:00:00Z"
        return True
    with EventStore(repo) as store:
        store.append(plan_mod.ref_for(made["id"]), plan_mod._change(made["id"], "note", "clock",
                                                                     Session.open(repo).speaker.author, long_ago))
    running = daemon(mail_repo)
    try:
        show = lambda: json.loads(cli("plan", "show", made["id"], "--json", cwd=mail_repo).out)["plan"]  # noqa: E731
        doc = wait_for(lambda: (d := show())["state"] == "blocked" and d, "the daemon to fail the phase")
        assert "ran past its timeout of 60 min" in doc["notes"][-1]["text"]
    finally:
        running.send_signal(signal.SIGTERM)
        assert running.wait(timeout=30) == 0
