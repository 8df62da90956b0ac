"""The monitor, driven in tmux as a person would use it: a dispatch goes from running to
idle, its run's log opens and closes, a bounce shows in the problems panel and opens as
the newest message, `q` quits; piped, one plain frame. Progress and spinners show on a
terminal only."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import git
from dispatching import drepo, fake_cli, plan as plan_runs, wait_for  # noqa: F401 - fixtures

TMUX = shutil.which("tmux")


def test_a_piped_monitor_prints_one_plain_frame(mail_repo: Path):
    out = subprocess.run([sys.executable, "-m", "aipass_git", "monitor"], cwd=mail_repo, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "\x1b" not in out.stdout
    for heading in ("agents", "problems", "recent events", "open PRs and plans", "quality"):
        assert heading in out.stdout


@pytest.mark.skipif(TMUX is None, reason="tmux is not installed (Debian package tmux); the live view needs a terminal")
def test_the_live_monitor_follows_a_dispatch_and_shows_a_bounce(drepo: Path, fake_cli: Path, cli, tmp_path: Path):  # noqa: F811
    config = drepo / ".aipass/config.yaml"
    config.write_text(config.read_text().replace("\n  command:\n", "\n  nowhere:\n    argv: [no-such-program-xyz]\n  command:\n", 1))
    git(drepo, "commit", "-qam", "a provider that is not installed")
    assert cli("agent", "new", "ghost", "--role", "cannot start", "--provider", "nowhere", cwd=drepo).code == 0
    script = tmp_path / "monitor.sh"
    script.write_text("".join(f"export {k}={shlex.quote(v)}\n" for k, v in os.environ.items() if k.isidentifier())
                      + f"cd {shlex.quote(str(drepo))}\nexec {shlex.quote(sys.executable)} -m aipass_git monitor --interval 0.2\n")
    socket = f"aipass-test-{os.getpid()}"
    tmux = [TMUX, "-L", socket]
    subprocess.run([*tmux, "-f", "/dev/null", "new-session", "-d", "-s", "mon", "-x", "200", "-y", "70", "sh", str(script)],
                   check=True)
    screen = lambda: subprocess.run([*tmux, "capture-pane", "-p", "-t", "mon"], capture_output=True, text=True).stdout  # noqa: E731
    try:
        wait_for(lambda: "aipass monitor" in screen(), "the monitor to draw")
        plan_runs(fake_cli, "api", "gated")
        assert cli("dispatch", "@api", "the gated task", "details", cwd=drepo).code == 0
        wait_for(lambda: any("api" in l and "running" in l and "the gated task" in l for l in screen().splitlines()),
                 "api running the task on screen")
        subprocess.run([*tmux, "send-keys", "-t", "mon", "l"], check=True)  # follow the run's log
        wait_for(lambda: "@api's run log" in screen(), "the run log panel")
        subprocess.run([*tmux, "send-keys", "-t", "mon", "l"], check=True)  # and close it
        wait_for(lambda: "@api's run log" not in screen(), "the run log panel to close")
        (fake_cli / "release-api").write_text("")
        wait_for(lambda: any(l.split("│")[1:3] and "api" in l.split("│")[1] and "idle" in l.split("│")[2]
                             for l in screen().splitlines() if l.count("│") > 3), "api idle again on screen")
        assert cli("dispatch", "@ghost", "a task it cannot start", "x", cwd=drepo).code == 1
        wait_for(lambda: "@ghost bounced" in screen(), "the bounce in the problems panel")
        subprocess.run([*tmux, "send-keys", "-t", "mon", "m"], check=True)  # open the newest message
        wait_for(lambda: "@human's newest message" in screen() and "from @ghost" in screen(), "the bounce, opened")
        subprocess.run([*tmux, "send-keys", "-t", "mon", "q"], check=True)
        wait_for(lambda: subprocess.run([*tmux, "has-session", "-t", "mon"], capture_output=True).returncode != 0,
                 "q to end the monitor")
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True)
    events = [json.loads(l) for l in (drepo / ".git/aipass/events.jsonl").read_text().splitlines()]
    assert any(e.get("event") == "finished" and e.get("agent") == "ghost" and e.get("result") == "bounced" for e in events)


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def test_the_report_counts_what_happened_and_its_page_loads_nothing(drepo: Path, fake_cli: Path, cli, tmp_path: Path):  # noqa: F811
    from dispatching import run_dispatch

    config = drepo / ".aipass/config.yaml"
    config.write_text(config.read_text().replace("\n  command:\n", "\n  nowhere:\n    argv: [no-such-program-xyz]\n  command:\n", 1))
    git(drepo, "commit", "-qam", "a provider that is not installed")
    assert cli("agent", "new", "ghost", "--role", "cannot start", "--provider", "nowhere", cwd=drepo).code == 0
    plan_runs(fake_cli, "api", "reply", "pr")
    run_dispatch(drepo, "api", "answer me")
    run_dispatch(drepo, "api", "build it")
    [pr] = json.loads(cli("pr", "list", "--json", cwd=drepo).out)["prs"]
    assert cli("pr", "merge", pr["id"], cwd=drepo).code == 0
    assert cli("dispatch", "@ghost", "cannot start", "x", cwd=drepo).code == 1
    page = tmp_path / "report.html"
    found = json.loads(cli("report", "--html", str(page), "--json", cwd=drepo).out)
    assert found["dispatches"]["by_agent"] == {"api": {"ok": 2}, "ghost": {"bounced": 1}}
    assert found["dispatches"]["run_seconds"]["count"] == 2
    assert found["prs"]["states"] == {"merged": 1} and found["prs"]["lead_seconds"]["count"] == 1
    assert found["mail"]["answer_seconds"]["count"] >= 1
    text = page.read_text()
    assert text.count("<svg") >= 4 and "<script" not in text.lower()
    assert not any(f'{attr}="http' in text or f"{attr}='http" in text for attr in ("src", "href"))
    assert "<td>ghost</td>" in text and "<th>bounced</th>" in text
    later = json.loads(cli("report", "--since", "2999-01-01", "--json", cwd=drepo).out)
    assert later["dispatches"]["by_agent"] == {} and later["prs"]["states"] == {}
    assert cli("report", "--since", "last week", cwd=drepo).code == 2


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed; the page is checked without a browser above")
def test_the_report_renders_in_headless_chromium_without_network(mail_repo: Path, cli, tmp_path: Path):
    page = tmp_path / "report.html"
    assert cli("report", "--html", str(page), cwd=mail_repo).code == 0
    shot = tmp_path / "shot.png"
    proc = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1200,2000",
                           f"--screenshot={shot}", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert shot.stat().st_size > 10_000
    dom = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    assert "Dispatches per agent" in dom


def _on_a_terminal(repo: Path, args: list[str], env: dict[str, str], until: bytes) -> bytes:
    """Run `git aipass ARGS` on a pseudo-terminal until UNTIL shows; then Ctrl-C it."""
    import pty
    import signal
    import time

    pid, fd = pty.fork()
    if pid == 0:  # the child: a person's terminal
        os.chdir(repo)
        os.execve(sys.executable, [sys.executable, "-m", "aipass_git", *args], {**os.environ, **env})
    out = b""
    deadline = time.monotonic() + 30
    while until not in out and time.monotonic() < deadline:
        try:
            out += os.read(fd, 65536)
        except OSError:
            break
    os.kill(pid, signal.SIGINT)
    os.waitpid(pid, 0)
    return out


def test_status_watch_redraws_in_place_and_colour_is_for_terminals_only(mail_repo: Path):
    shown = _on_a_terminal(mail_repo, ["status", "--watch", "0.5"], {"TERM": "xterm"}, b"quality")
    assert b"\x1b[H\x1b[2J" in shown and b"\x1b[1mAGENT" in shown
    plain = _on_a_terminal(mail_repo, ["status", "--watch", "0.5"], {"TERM": "xterm", "NO_COLOR": "1"}, b"quality")
    assert b"\x1b[1m" not in plain and b"AGENT" in plain
    piped = subprocess.run([sys.executable, "-m", "aipass_git", "send", "@nobody", "x", "y"], cwd=mail_repo,
                           capture_output=True)
    assert piped.returncode == 2 and piped.stderr.startswith(b"error: ") and b"\x1b" not in piped.stderr


def test_dispatch_wait_shows_where_the_run_is_on_a_terminal_and_nothing_when_piped(drepo: Path, fake_cli: Path):  # noqa: F811
    import re

    plan_runs(fake_cli, "api", "ok", "ok")
    shown = _on_a_terminal(drepo, ["dispatch", "@api", "tidy up", "details", "--wait"], {"TERM": "xterm"}, b"ok: exit 0")
    # the spinner's line: the agent, its state, the time waited
    assert re.search(rb"@api: (waiting to start|starting|running)[^\r\n]*\(0m\d\ds\)", shown), shown[-500:]
    piped = subprocess.run([sys.executable, "-m", "aipass_git", "dispatch", "@api", "again", "x", "--wait"], cwd=drepo,
                           capture_output=True)
    assert piped.returncode == 0, piped.stderr
    assert piped.stderr == b"" and b"\x1b" not in piped.stdout and b"ok: exit 0" in piped.stdout


def test_long_work_shows_a_progress_bar_on_a_terminal_only(mail_repo: Path, tmp_path: Path):
    shown = _on_a_terminal(mail_repo, ["audit"], {"TERM": "xterm"}, b"standards")
    assert b"auditing" in shown
    specs = tmp_path / "agents.yaml"
    specs.write_text("".join(f"- {{name: bulk{i}, role: helper {i}}}\n" for i in range(60)))
    shown = _on_a_terminal(mail_repo, ["agent", "new", "--from", str(specs)], {"TERM": "xterm"}, b"in one commit")
    assert b"creating agents" in shown and b"created 60 agents" in shown
    piped = subprocess.run([sys.executable, "-m", "aipass_git", "audit"], cwd=mail_repo, capture_output=True)
    assert b"auditing" not in piped.stderr and b"\x1b" not in piped.stdout + piped.stderr
