"""Commands handed to the repository's warm process (cli/warm.py, core/handoff.py): the same
output, exit code, environment, folder and input as a command run by itself; signals
relayed; nothing run twice; anything amiss runs the command here; a command that finds
none starts one, which leaves when idle."""

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


def env_for(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The tests' environment with commands handed (conftest turns that off for every other test)."""
    return {**{k: v for k, v in os.environ.items() if k != handoff.OFF_ENV}, **(extra or {})}


def serving_pid(repo: Path) -> int | None:
    """The pid in the lock of the warm process serving REPO, if it is alive (a zombie is not:
    a container's first process may never reap the orphans it inherits)."""
    try:
        pid = int(Path(handoff.lock_of(str(socket_of(repo)))).read_text())
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, ValueError, IndexError):
        return None
    return pid if state != "Z" else None


def stop_serving(repo: Path) -> None:
    pid = serving_pid(repo)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: serving_pid(repo) is None and not socket_of(repo).exists(), "the warm process to leave")


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
                          env=env_for(env), input=input)


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
                               env=env_for({"AIPASS_AGENT": agent})) for agent in agents]
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
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env_for())

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
    proc.send_signal(signal.SIGTERM)  # the fork dies of it before it can say an exit code
    assert proc.wait(timeout=30) == 128 + signal.SIGTERM  # as a shell reports a command killed by it
    assert "error" not in proc.stderr.read()
    wait_for(lambda: not children(warm.pid), "the terminated fork to end")

    proc = follower()
    proc.kill()  # no chance to relay anything: the warm side sees it gone
    proc.wait()
    wait_for(lambda: not children(warm.pid), "the hung-up fork to end")


def test_anything_amiss_runs_the_command_here(mail_repo: Path, monkeypatch):
    sock = socket_of(mail_repo)
    sock.parent.mkdir(parents=True, exist_ok=True)
    sock.write_text("")  # a stale socket: nobody listens
    try:
        assert json.loads(here("daemon", "status", "--json", cwd=mail_repo).stdout)["warm"] is False
        assert ask("status", "--json", cwd=mail_repo).returncode != 0  # not handed, and typer is missing here
        # ...and that asker started a warm process, which takes the socket over
        wait_for(lambda: ask("status", "--json", cwd=mail_repo).returncode == 0, "a fresh warm process to serve")
        # another installation (or Python) asks: refused before anything runs, so it runs here
        monkeypatch.chdir(mail_repo)
        monkeypatch.delenv(handoff.OFF_ENV)
        monkeypatch.setattr(handoff, "identity", lambda: {"python": "/elsewhere/python", "prefix": "/elsewhere", "package": "/elsewhere/pkg"})
        assert handoff.run(["status", "--json"]) is None
        monkeypatch.undo()
        # commands that are not handed, and the switch that hands none
        monkeypatch.chdir(mail_repo)
        monkeypatch.delenv(handoff.OFF_ENV)
        assert handoff.run(["daemon", "status"]) is None
        assert handoff.run(["--debug", "monitor"]) is None  # the command is the first word that is no option
        assert handoff.run(["sync", "--json"]) is None  # a remote may ask for a password: a fork has no terminal
        assert ask("status", cwd=mail_repo, env={handoff.OFF_ENV: "1"}).returncode != 0
        assert ask("status", cwd=mail_repo).returncode == 0
    finally:
        stop_serving(mail_repo)
    assert not sock.exists()  # the warm process removes its socket as it ends


def test_a_quick_commands_two_lines_in_one_read_are_still_one_run(mail_repo: Path, monkeypatch):
    import socket
    import threading

    sock = socket_of(mail_repo)
    sock.parent.mkdir(parents=True, exist_ok=True)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(sock))
    server.listen(1)

    def answer() -> None:  # a warm side whose command ended before the asker read a word
        conn, _ = server.accept()
        socket.recv_fds(conn, 65536, 3)
        conn.sendall(handoff.STARTED + b"exit 7\n")
        conn.close()

    threading.Thread(target=answer, daemon=True).start()
    monkeypatch.chdir(mail_repo)
    monkeypatch.delenv(handoff.OFF_ENV)
    saved = {signum: signal.getsignal(signum) for signum in handoff.RELAYED}
    try:
        assert handoff.run(["status"]) == 7  # its exit code: not run here a second time
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)
        server.close()
        sock.unlink()


def test_a_command_starts_the_warm_process_one_per_repository(mail_repo: Path):
    assert not socket_of(mail_repo).exists()
    try:
        first = subprocess.run([sys.executable, "-m", "aipass_git", "status", "--json"], cwd=mail_repo,
                               capture_output=True, text=True, env=env_for(), timeout=60)
        assert first.returncode == 0, first.stderr  # run here: nothing listened yet
        wait_for(lambda: socket_of(mail_repo).exists(), "the warm socket")
        pid = serving_pid(mail_repo)
        assert pid is not None and oct(socket_of(mail_repo).stat().st_mode & 0o777) == "0o600"
        assert ask("status", "--json", cwd=mail_repo).returncode == 0  # the next one is handed
        assert json.loads(here("daemon", "status", "--json", cwd=mail_repo).stdout)["warm"] is True
        # a second one (two commands racing to start it) sees the lock and leaves at once
        second = subprocess.run(warm_mod.command(mail_repo / ".git"), timeout=60)
        assert second.returncode == 0 and serving_pid(mail_repo) == pid
        assert ask("status", "--json", cwd=mail_repo).returncode == 0
        # killed: the next command runs here and starts a fresh one
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: serving_pid(mail_repo) is None, "the killed warm process to be gone")
        assert subprocess.run([sys.executable, "-m", "aipass_git", "status"], cwd=mail_repo, capture_output=True,
                              env=env_for(), timeout=60).returncode == 0
        wait_for(lambda: serving_pid(mail_repo) not in (None, pid), "a fresh warm process")
        wait_for(lambda: ask("status", "--json", cwd=mail_repo).returncode == 0, "the fresh warm process to serve")
    finally:
        stop_serving(mail_repo)


def test_a_warm_process_leaves_when_idle_and_none_starts_outside_aipass(mail_repo: Path, tmp_path: Path):
    idle = subprocess.Popen(warm_mod.command(mail_repo / ".git", idle=0.2), stderr=subprocess.PIPE)
    assert idle.wait(timeout=60) == 0, idle.stderr.read()  # no command came: it left by itself
    assert not socket_of(mail_repo).exists() and serving_pid(mail_repo) is None
    plain = tmp_path / "plain"
    subprocess.run(["git", "init", "-q", str(plain)], check=True)
    run = subprocess.run([sys.executable, "-m", "aipass_git", "status"], cwd=plain, capture_output=True,
                         env=env_for(), timeout=60)
    assert run.returncode == 2 and not (plain / ".git" / "aipass").exists()  # nothing started, nothing made
