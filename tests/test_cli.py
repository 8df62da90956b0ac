"""The command line as users meet it: through git, with help everywhere and clean errors."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
import typer
from conftest import BIN_DIR, run_git_aipass

from aipass_git import __version__
from aipass_git.cli.app import COMMANDS, root

ROOT = Path(__file__).resolve().parent.parent


def command_paths() -> list[list[str]]:
    """Every command and group of the CLI, as argument lists."""
    paths: list[list[str]] = []

    def walk(cmd: click.Command, prefix: list[str]) -> None:
        paths.append(prefix)
        if isinstance(cmd, click.Group):
            ctx = click.Context(cmd)
            for name in cmd.list_commands(ctx):
                sub = cmd.get_command(ctx, name)
                if not sub.hidden:
                    walk(sub, [*prefix, name])

    walk(typer.main.get_command(root), [])
    return paths


def test_each_lazily_loaded_command_is_in_its_module_with_its_summary():
    group = typer.main.get_command(root)
    ctx = click.Context(group)
    for name, (module, summary) in COMMANDS.items():
        command = group.get_command(ctx, name)
        assert command is not None, f"{name} is not defined in aipass_git.cli.{module}"
        first = (command.help or "").split("\n\n")[0].replace("\n", " ")
        assert command.hidden == (summary is None) and (summary is None or first == summary), name


@pytest.mark.parametrize("path", command_paths(), ids=lambda p: " ".join(p) or "(root)")
def test_every_command_has_dash_h(path, cli, tmp_path):
    result = cli(*path, "-h", cwd=tmp_path)
    assert result.code == 0, result.err
    assert "Usage: git aipass" in result.out
    assert "--help" in result.out


def test_help_command_matches_dash_h(cli, tmp_path):
    assert cli("help", "agent", "new", cwd=tmp_path).out == cli("agent", "new", "-h", cwd=tmp_path).out
    root = cli("help", cwd=tmp_path)
    assert root.code == 0 and "agent" in root.out and "init" in root.out
    unknown = cli("help", "frobnicate", cwd=tmp_path)
    assert unknown.code == 2 and "no command 'frobnicate'" in unknown.err  # as `git aipass frobnicate`


def test_no_arguments_prints_help_and_succeeds(cli, tmp_path):
    for args in ([], ["agent"]):
        result = cli(*args, cwd=tmp_path)
        assert result.code == 0 and "Commands" in result.out


def test_usage_errors_exit_2_with_error_and_hint(cli, tmp_path):
    unknown = cli("frobnicate", cwd=tmp_path)
    assert unknown.code == 2
    assert unknown.err.startswith("error: No such command 'frobnicate'")
    assert "hint: see: git aipass -h" in unknown.err
    missing = cli("agent", "new", "x", cwd=tmp_path)
    assert missing.code == 2 and "--role" in missing.err and "hint: see: git aipass agent new -h" in missing.err


def test_tracebacks_only_with_debug(cli, tmp_path):
    quiet = cli("agent", "list", cwd=tmp_path)
    assert quiet.code == 2 and "Traceback" not in quiet.err
    loud = cli("--debug", "agent", "list", cwd=tmp_path)
    assert loud.code == 2 and "Traceback" in loud.err and "error: not a git repository" in loud.err


def test_unexpected_errors_become_one_line(cli, tmp_path, monkeypatch):
    def explode(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("aipass_git.cli.setup_cmd.examine", explode)
    result = cli("doctor", cwd=tmp_path)
    assert result.code == 1
    assert result.err == "error: unexpected RuntimeError: boom\nhint: run again with --debug and report it\n"


def test_version(cli, tmp_path):
    assert cli("--version", cwd=tmp_path).out == f"aipass-git {__version__}\n"


def test_git_runs_the_installed_program(aipass_repo):
    assert shutil.which("git-aipass", path=str(BIN_DIR)), "git-aipass is not installed next to this python"
    listed = run_git_aipass("agent", "list", "--json", cwd=aipass_repo)
    assert listed.code == 0, listed.err
    assert [a["name"] for a in json.loads(listed.out)["agents"]] == ["devpulse"]
    short_help = run_git_aipass("-h", cwd=aipass_repo)
    assert short_help.code == 0 and "Usage: git aipass" in short_help.out


def test_python_dash_m_runs_the_same_program(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "aipass_git", "--version"], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout == f"aipass-git {__version__}\n"


@pytest.mark.skipif(shutil.which("man") is None, reason="no man program on this machine")
def test_git_help_flag_opens_the_shipped_man_page(aipass_repo):
    env = {"MANPAGER": "cat", "PAGER": "cat", "MANWIDTH": "80"}
    result = run_git_aipass("--help", cwd=aipass_repo, env=env)
    assert result.code == 0, result.err
    assert "git-aipass" in result.out and "identity, memory, mail and dispatch" in result.out


def test_man_page_documents_every_command():
    page = (ROOT / "man/git-aipass.1").read_text()
    for path in command_paths():
        if path and path not in (["agent"], ["mail"], ["memory"]):
            assert f".B {' '.join(path)}" in page, f"man page lacks {' '.join(path)}"


def test_man_page_items_sit_in_their_sections():
    """Each item of COMMANDS names a command (.B) and each of FILES a file or ref (.I): an
    entry added at the wrong anchor would split another's text in two."""
    section, items, before = None, {}, None
    for line in (ROOT / "man/git-aipass.1").read_text().splitlines():
        if line.startswith(".SH "):
            section = line[4:]
        elif before == ".TP":
            items.setdefault(section, []).append(line)
        before = line
    assert items["COMMANDS"] and all(line.startswith(".B ") for line in items["COMMANDS"]), \
        [line for line in items["COMMANDS"] if not line.startswith(".B ")]
    assert items["FILES"] and all(line.startswith(".I ") for line in items["FILES"])


def test_startup_does_not_import_heavy_modules(tmp_path):
    code = (
        "import sys; from aipass_git.cli.main import main; "
        "heavy = [m for m in ('git', 'chromadb', 'yaml', 'filelock', 'rich', 'pydantic') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""
