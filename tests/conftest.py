"""Fixtures: real git repositories in temporary folders, with git and HOME isolated.

No test reads or writes outside its temporary folders: HOME, git's global and system
config, and the identity are replaced for the whole session before any git runs.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from aipass_git.cli.main import main

BIN_DIR = Path(sys.executable).parent


@pytest.fixture(scope="session", autouse=True)
def isolated_git(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("home")
    gitconfig = home / ".gitconfig"
    gitconfig.write_text(
        "[user]\n\tname = Test Human\n\temail = human@example.invalid\n"
        "[init]\n\tdefaultBranch = main\n[commit]\n\tgpgsign = false\n",
        encoding="utf-8",
    )
    env = {
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": str(gitconfig),
        "GIT_TERMINAL_PROMPT": "0",
        "LC_ALL": "C.UTF-8",
        # every command in its own process: a warm process started by one test's command
        # would outlive it (tests/test_warm.py starts them on purpose)
        "AIPASS_NO_WARM": "1",
    }
    for var in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL",
                "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL", "AIPASS_AGENT", "AIPASS_DEBUG", "AIPASS_BIN",
                # Claude Code's sandbox switch: a test that needs it sets it itself
                "IS_SANDBOX"):
        os.environ.pop(var, None)
    os.environ.update(env)
    return env


def git(cwd: Path, *args: str, check: bool = True) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr}")
    return proc.stdout.strip()


@pytest.fixture(scope="session")
def template_repo(tmp_path_factory: pytest.TempPathFactory, isolated_git) -> Path:
    path = tmp_path_factory.mktemp("template") / "repo"
    path.mkdir()
    git(path, "init", "-q")
    (path / "README.md").write_text("# project\n", encoding="utf-8")
    (path / "src").mkdir()
    (path / "src" / "app.py").write_text("print('hi')\n", encoding="utf-8")
    git(path, "add", "-A")
    git(path, "commit", "-qm", "first")
    return path


@pytest.fixture(scope="session")
def template_aipass_repo(tmp_path_factory: pytest.TempPathFactory, template_repo: Path) -> Path:
    path = tmp_path_factory.mktemp("template-aipass") / "repo"
    shutil.copytree(template_repo, path, symlinks=True)
    # hooks stay off in the shared fixtures (each commit would start Python); the hook
    # tests install them where they need them
    assert main_in(path, "init", "--no-hooks") == 0
    return path


def main_in(cwd: Path, *args: str) -> int:
    old = os.getcwd()
    os.chdir(cwd)
    try:
        return main(list(args))
    finally:
        os.chdir(old)


@pytest.fixture
def repo(tmp_path: Path, template_repo: Path) -> Path:
    """A git repository with one commit, not set up for aipass."""
    path = tmp_path / "repo"
    shutil.copytree(template_repo, path, symlinks=True)
    return path


def own_keyring(repo: Path) -> None:
    """A copied repository gets a copy of the template's private keys under a keyring id of
    its own: a test that rotates a key must not change the keys of the tests after it."""
    import secrets

    from aipass_git.store.keyring import config_home

    old = git(repo, "config", "aipass.keyring", check=False)
    if not old:
        return
    new = secrets.token_hex(8)
    shutil.copytree(config_home() / old, config_home() / new)
    git(repo, "config", "aipass.keyring", new)


@pytest.fixture
def aipass_repo(tmp_path: Path, template_aipass_repo: Path) -> Path:
    """A git repository after `git aipass init` (orchestrator devpulse)."""
    path = tmp_path / "repo"
    shutil.copytree(template_aipass_repo, path, symlinks=True)
    own_keyring(path)
    return path


@pytest.fixture(scope="session")
def template_mail_repo(tmp_path_factory: pytest.TempPathFactory, template_aipass_repo: Path) -> Path:
    path = tmp_path_factory.mktemp("template-mail") / "repo"
    shutil.copytree(template_aipass_repo, path, symlinks=True)
    for name, role in (("api", "builds the API"), ("docs", "writes the docs"), ("quality", "reviews")):
        assert main_in(path, "agent", "new", name, "--role", role, "--provider", "command") == 0
    return path


@pytest.fixture
def mail_repo(tmp_path: Path, template_mail_repo: Path) -> Path:
    """An aipass repository with agents api, docs, quality and the orchestrator devpulse."""
    path = tmp_path / "repo"
    shutil.copytree(template_mail_repo, path, symlinks=True)
    own_keyring(path)
    return path


def make_desk(repo: Path, agent: str) -> Path:
    """A worktree on branch aipass/AGENT, as dispatch creates for an agent's desk."""
    desk = repo.parent / f"desk-{agent}"
    git(repo, "worktree", "add", "-q", "-b", f"aipass/{agent}", str(desk))
    return desk


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch):
    """Run `git aipass ARGS` in-process in a folder; returns exit code, stdout, stderr."""

    def run(*args: str, cwd: Path, input: bytes | str | None = None, env: dict[str, str | None] | None = None) -> Result:
        capsys.readouterr()
        monkeypatch.chdir(cwd)
        data = input.encode() if isinstance(input, str) else (input or b"")
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))
        saved = {k: os.environ.get(k) for k in (env or {})}
        for key, value in (env or {}).items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        try:
            code = main(list(args))
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def run_git_aipass(*args: str, cwd: Path, env: dict[str, str] | None = None, input: str | None = None) -> Result:
    """Run the installed program through git itself, as a user would: `git aipass ARGS`."""
    full_env = {**os.environ, "PATH": f"{BIN_DIR}{os.pathsep}{os.environ.get('PATH', '')}", **(env or {})}
    proc = subprocess.run(["git", "aipass", *args], cwd=cwd, capture_output=True, text=True, env=full_env, input=input)
    return Result(proc.returncode, proc.stdout, proc.stderr)


def snapshot(path: Path) -> tuple[str, str, dict[str, bytes]]:
    """HEAD, the index state and every file under the worktree: to prove nothing changed."""
    head = git(path, "rev-parse", "--verify", "--quiet", "HEAD", check=False)
    status = git(path, "status", "--porcelain", "--untracked-files=all")
    files = {
        str(p.relative_to(path)): p.read_bytes()
        for p in sorted(path.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(path).parts
    }
    return head, status, files


@pytest.fixture
def daemon(tmp_path: Path):
    """`git daemon` serving TMP_PATH on 127.0.0.1 (push enabled); killed by pid at teardown."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    pid_file = tmp_path / "daemon.pid"
    proc = subprocess.Popen(
        ["git", "daemon", "--reuseaddr", "--export-all", "--enable=receive-pack", f"--base-path={tmp_path}",
         "--listen=127.0.0.1", f"--port={port}", f"--pid-file={pid_file}", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        yield f"git://127.0.0.1:{port}"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def wait_for_daemon(url: str) -> None:
    for _ in range(200):  # readiness, not timing: each try either answers or is refused
        if subprocess.run(["git", "ls-remote", url], capture_output=True).returncode == 0:
            return
        time.sleep(0.05)
    raise AssertionError(f"git daemon never answered at {url}")
