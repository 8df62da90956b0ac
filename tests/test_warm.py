"""Commands handed to the daemon's warm process (cli/warm.py, core/handoff.py): the same
output, exit code, environment, folder and input as a command run by itself; signals
relayed; nothing run twice; anything amiss runs the command here."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from aipass_git.cli import warm as warm_mod
from aipass_git.core import handoff

from conftest import run_git_aipass
from dispatching import wait_for

# An asker that cannot import typer: it succeeds only when the warm process ran the command.
NO_TYPER = ("import sys; sys.modules['typer'] = None; sys.modules['click'] = None; "
            "from aipass_git.__main__ import main; raise SystemExit(main())")


def socket_of(repo: Path) -> Path:
    return Path(handoff.socket_in(str(repo / ".git")))


def start_warm(repo: Path) -> subprocess.Popen:
    proc = subprocess.Popen(warm_mod.command(repo / ".git"), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    wait_for(lambda: socket_of(repo).exists() or proc.poll() is not None, "the warm socket")
    assert proc.poll() is None, proc.stderr.read().decode()
    return proc


@pytest.fixture
def warm(mail_repo: Path):
    proc = start_warm(mail_repo)
    yield proc
    proc.terminate()
    proc.wait(timeout=30)


def ask(*args: str, cwd: Path, env: dict[str, str] | None = None, input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", NO_TYPER, *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, input=input)


def here(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "aipass_git", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, handoff.OFF_ENV: "1", **(env or {})})


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def warm_children(pid: int) -> list[int]:
    def is_warm(child: int) -> bool:
        try:
            return "aipass_git.cli.warm" in Path(f"/proc/{child}/cmdline").read_text()
        except OSError:
            return False  # it ended meanwhile

    return [child for child in children(pid) if is_warm(child)]


def test_a_handed_command_prints_and_exits_as_one_run_here(mail_repo: Path, warm):
    sent = run_git_aipass("send", "@api", "review the parser", "see src/app.py", cwd=mail_repo)
    assert sent.code == 0, sent.err
    for args in (("inbox", "@api", "--json"), ("status", "--json"), ("agent", "list", "--json"), ("-h",)):
        there, local = ask(*args, cwd=mail_repo), here(*args, cwd=mail_repo)
        assert there.returncode == local.returncode == 0, there.stderr
        assert there.stdout == local.stdout
    # errors: the same words on stderr and the same exit code
    there, local = ask("thread", "nosuch", cwd=mail_repo), here("thread", "nosuch", cwd=mail_repo)
    assert there.returncode == local.returncode == 2
    assert there.stderr == local.stderr and "nosuch" in there.stderr


def test_many_askers_at_once_each_get_their_own_command(mail_repo: Path, warm):
    agents = ["api", "docs", "quality"] * 4
    askers = [subprocess.Popen([sys.executable, "-c", NO_TYPER, "inbox", "--json"], cwd=mail_repo, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env={**os.environ, "AIPASS_AGENT": agent}) for agent in agents]
    owners = []
    for proc in askers:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        owners.append(json.loads(out)["owner"])
    assert owners == agents  # each fork took its own asker's environment, nobody else's


def test_the_askers_environment_folder_and_input_are_the_commands(mail_repo: Path, warm):
    (mail_repo / "src" / "deep").mkdir()
    # stdin carries the body; AIPASS_AGENT says who speaks; a subfolder is still the repository
    sent = ask("send", "@docs", "from stdin", "-", cwd=mail_repo / "src" / "deep", env={"AIPASS_AGENT": "api"},
               input="the body, read from standard input\n")
    assert sent.returncode == 0, sent.stderr
    inbox = json.loads(ask("inbox", "--json", cwd=mail_repo, env={"AIPASS_AGENT": "docs"}).stdout)
    [message] = [m for m in inbox["messages"] if m["subject"] == "from stdin"]
    assert message["from"] == "api"
    shown = ask("thread", message["id"], cwd=mail_repo)
    assert "the body, read from standard input" in shown.stdout
    # git's pointers at a repository travel with the environment: the same answer as here
    pointed = {"GIT_DIR": str(mail_repo / ".git"), "GIT_WORK_TREE": str(mail_repo), "AIPASS_AGENT": "docs"}
    there, local = ask("inbox", "--json", cwd=mail_repo / "src", env=pointed), here("inbox", "--json", cwd=mail_repo / "src", env=pointed)
    assert there.returncode == local.returncode == 0 and there.stdout == local.stdout
    # the warm process's own environment is not the command's
    assert json.loads(ask("inbox", "--json", cwd=mail_repo, env={"AIPASS_AGENT": "quality"}).stdout)["owner"] == "quality"


def test_ctrl_c_reaches_the_command_and_a_dead_asker_hangs_it_up(mail_repo: Path, warm):
    events = mail_repo / ".git" / "aipass" / "events.jsonl"
    events.parent.mkdir(parents=True, exist_ok=True)

    def follower() -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-c", NO_TYPER, "log", "--follow"], cwd=mail_repo,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

        def printed() -> bool:  # an event appended until the follower, started, prints one
            with open(events, "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"time": "2026-01-01T00:00:00Z", "event": "marker"}) + "\n")
            return bool(select.select([proc.stdout], [], [], 0.2)[0])

        wait_for(printed, "the followed log to print")
        return proc

    proc = follower()
    assert children(warm.pid), "the command runs in a fork of the warm process"
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 130  # as a Ctrl-C ends `log --follow` run here
    wait_for(lambda: not children(warm.pid), "the fork to end")

    proc = follower()
    proc.kill()  # no chance to relay anything: the warm side sees it gone
    proc.wait()
    wait_for(lambda: not children(warm.pid), "the hung-up fork to end")


def test_anything_amiss_runs_the_command_here(mail_repo: Path, monkeypatch):
    sock = socket_of(mail_repo)
    sock.parent.mkdir(parents=True, exist_ok=True)
    sock.write_text("")  # a stale socket: nobody listens
    assert ask("status", "--json", cwd=mail_repo).returncode != 0  # not handed, and typer is missing here
    assert run_git_aipass("status", "--json", cwd=mail_repo).code == 0
    sock.unlink()

    proc = start_warm(mail_repo)
    try:
        # another installation (or Python) asks: refused before anything runs, so it runs here
        monkeypatch.chdir(mail_repo)
        monkeypatch.setattr(handoff, "identity", lambda: {"python": "/elsewhere/python", "prefix": "/elsewhere", "package": "/elsewhere/pkg"})
        assert handoff.run(["status", "--json"]) is None
        monkeypatch.undo()
        # commands that are not handed, and the switch that hands none
        assert handoff.run(["daemon", "status"]) is None
        assert ask("status", cwd=mail_repo, env={handoff.OFF_ENV: "1"}).returncode != 0
        assert ask("status", cwd=mail_repo).returncode == 0
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert not sock.exists()  # the warm process removes its socket as it ends


def test_the_daemon_keeps_a_warm_process_and_ends_it(mail_repo: Path):
    daemon = subprocess.Popen([sys.executable, "-m", "aipass_git", "daemon", "run", "--poll", "0.05", "--tick", "1"],
                              cwd=mail_repo, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: socket_of(mail_repo).exists(), "the daemon's warm socket")
        [first] = warm_children(daemon.pid)
        assert oct(socket_of(mail_repo).stat().st_mode & 0o777) == "0o600"
        assert json.loads(here("daemon", "status", "--json", cwd=mail_repo).stdout)["warm"] is True
        assert ask("status", "--json", cwd=mail_repo).returncode == 0
        os.kill(first, signal.SIGKILL)  # a warm process that died is started again
        wait_for(lambda: [pid for pid in warm_children(daemon.pid) if pid != first], "a new warm process")
        wait_for(lambda: ask("status", "--json", cwd=mail_repo).returncode == 0, "the new warm process to serve")
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)
    wait_for(lambda: not socket_of(mail_repo).exists(), "the warm socket to go with the daemon")
