import json
from pathlib import Path

import pytest
from conftest import git, snapshot

from aipass_git.agents.registry import Registry
from aipass_git.core import canonical, repo as repo_mod
from aipass_git.core.errors import UnknownAgentError


def test_agent_new_commits_passport_memory_and_readme(aipass_repo: Path, cli):
    result = cli("agent", "new", "@quality", "--role", "reviews every change", "--provider", "codex",
                 "--model", "gpt-5", "--owns", "tests/**", "--owns", "docs/*.md", "--template", "reviewer",
                 cwd=aipass_repo)
    assert result.code == 0, result.err
    assert "created agent quality" in result.out
    folder = aipass_repo / ".aipass/agents/quality"
    files = git(aipass_repo, "show", "--name-only", "--format=", "HEAD").splitlines()
    assert sorted(files) == [".aipass/agents/quality/" + f for f in ("README.md", "memory.json", "passport.json")] + [".aipass/allowed_signers"]
    assert git(aipass_repo, "status", "--porcelain") == ""
    raw = (folder / "passport.json").read_text(encoding="utf-8")
    passport = json.loads(raw)
    assert raw == canonical.dumps(passport)  # sorted keys, 2-space indent, final newline
    assert passport["v"] == 1
    assert passport["name"] == "quality" and passport["provider"] == "codex" and passport["model"] == "gpt-5"
    assert passport["owns"] == ["tests/**", "docs/*.md"] and passport["template"] == "reviewer"
    assert passport["created_by"] == "Test Human"
    memory = json.loads((folder / "memory.json").read_text())
    assert memory == {"v": 1, "agent": "quality", "sessions": [], "learnings": [], "observations": []}
    readme = (folder / "README.md").read_text()
    assert readme.startswith("# quality (reviewer)") and "reviews every change" in readme
    assert "`tests/**`" in readme and "devpulse merges" in readme
    trailers = git(aipass_repo, "log", "-1", "--format=%(trailers:key=Aipass-Agent,valueonly)")
    assert trailers == "quality"


def test_agent_new_defaults_provider_from_config(aipass_repo: Path, cli):
    assert cli("agent", "new", "api", "--role", "builds the API", cwd=aipass_repo).code == 0
    passport = json.loads((aipass_repo / ".aipass/agents/api/passport.json").read_text())
    assert passport["provider"] == "claude" and passport["model"] is None and passport["owns"] == []


def test_agent_list_table_and_json(aipass_repo: Path, cli):
    cli("agent", "new", "api", "--role", "builds the API", cwd=aipass_repo)
    table = cli("agent", "list", cwd=aipass_repo)
    assert table.code == 0
    lines = table.out.splitlines()
    assert lines[0].split() == ["NAME", "PROVIDER", "MODEL", "STATUS", "OWNS", "ROLE"]  # the demo's table too
    assert [l.split()[0] for l in lines[1:]] == ["api", "devpulse"]
    doc = json.loads(cli("agent", "list", "--json", cwd=aipass_repo).out)
    assert doc["v"] == 1 and [a["name"] for a in doc["agents"]] == ["api", "devpulse"]
    assert doc["agents"][0]["role"] == "builds the API"


def test_agent_show(aipass_repo: Path, cli):
    cli("agent", "new", "api", "--role", "builds the API", "--owns", "src/**", cwd=aipass_repo)
    shown = cli("agent", "show", "@api", cwd=aipass_repo)
    assert shown.code == 0
    assert "builds the API" in shown.out and "src/**" in shown.out and "0 learnings" in shown.out
    doc = json.loads(cli("agent", "show", "api", "--json", cwd=aipass_repo).out)
    assert doc["agent"]["name"] == "api" and doc["memory"] == {"sessions": 0, "learnings": 0, "observations": 0}
    missing = cli("agent", "show", "nobody-here", cwd=aipass_repo)
    assert missing.code == 2 and "no agent named 'nobody-here'" in missing.err and "known agents: api, devpulse" in missing.err


def test_agent_retire_keeps_history_and_stops_addressing(aipass_repo: Path, cli):
    cli("agent", "new", "api", "--role", "builds the API", cwd=aipass_repo)
    result = cli("agent", "retire", "api", cwd=aipass_repo)
    assert result.code == 0 and "retired agent api" in result.out
    passport = json.loads((aipass_repo / ".aipass/agents/api/passport.json").read_text())
    assert passport["status"] == "retired" and passport["retired"]
    assert git(aipass_repo, "log", "--format=%s", "--", ".aipass/agents/api").splitlines() == [
        "aipass: retire agent api", "aipass: add agent api"]
    assert "api" not in cli("agent", "list", cwd=aipass_repo).out
    assert "retired" in cli("agent", "list", "--all", cwd=aipass_repo).out
    registry = Registry(repo_mod.discover(aipass_repo))
    with pytest.raises(UnknownAgentError, match="retired"):
        registry.resolve("api")
    assert registry.get("api").status == "retired"
    again = cli("agent", "retire", "api", cwd=aipass_repo)
    assert again.code == 0 and "already retired; nothing changed" in again.out
    reuse = cli("agent", "new", "api", "--role", "again", cwd=aipass_repo)
    assert reuse.code == 2 and "already exists (retired)" in reuse.err


def test_the_orchestrator_cannot_be_retired(aipass_repo: Path, cli):
    before = snapshot(aipass_repo)
    result = cli("agent", "retire", "devpulse", cwd=aipass_repo)
    assert result.code == 2 and "orchestrator" in result.err
    assert snapshot(aipass_repo) == before


@pytest.mark.parametrize(
    "args, words",
    [
        (["../x"], "not allowed"),
        (["a/b"], "not allowed"),
        (["refs"], "reserved"),
        ([""], "empty"),
        (["a" * 200], "200 characters"),
        (["Quality"], "upper case"),
        (["qualité"], "not allowed"),
        (["devpulse"], "already exists"),
        (["ok", "--template", "nope"], "unknown template 'nope'"),
        (["ok", "--provider", "chatgpt"], "unknown provider 'chatgpt'"),
        (["ok", "--owns", "../outside/**"], "--owns[0]"),
        (["ok", "--owns", "/etc/*"], "--owns[0]"),
        (["ok", "--model", "bad model"], "--model"),
        (["ok", "--role", "two\nlines"], "--role"),
        (["ok", "--role", ""], "--role"),
    ],
)
def test_bad_input_is_refused_and_writes_nothing(aipass_repo: Path, cli, args, words):
    if "--role" not in args:
        args = [*args, "--role", "does things"]
    before = snapshot(aipass_repo)
    result = cli("agent", "new", *args, cwd=aipass_repo)
    assert result.code == 2, result.err
    assert result.err.startswith("error: ") and words in result.err
    assert "hint: " in result.err
    assert "Traceback" not in result.err
    assert snapshot(aipass_repo) == before


def test_passport_with_a_missing_field_names_file_and_field(aipass_repo: Path, cli):
    path = aipass_repo / ".aipass/agents/devpulse/passport.json"
    doc = json.loads(path.read_text())
    del doc["provider"]
    path.write_text(json.dumps(doc))
    before = snapshot(aipass_repo)
    for args in (["agent", "list"], ["agent", "show", "devpulse"], ["agent", "retire", "devpulse"]):
        result = cli(*args, cwd=aipass_repo)
        assert result.code == 2, args
        assert "error: .aipass/agents/devpulse/passport.json: field 'provider': is missing" in result.err
    assert snapshot(aipass_repo) == before


def test_malformed_config_refuses_agent_new(aipass_repo: Path, cli):
    path = aipass_repo / ".aipass/config.yaml"
    path.write_text(path.read_text() + "\n  : : broken\n")
    before = snapshot(aipass_repo)
    result = cli("agent", "new", "api", "--role", "r", cwd=aipass_repo)
    assert result.code == 2 and "error: .aipass/config.yaml: line" in result.err
    assert snapshot(aipass_repo) == before


def test_agent_commands_before_init_say_how_to_start(repo: Path, cli):
    before = snapshot(repo)
    result = cli("agent", "new", "api", "--role", "r", cwd=repo)
    assert result.code == 2 and "not set up" in result.err and "hint: run: git aipass init" in result.err
    assert cli("agent", "list", cwd=repo).code == 2
    assert snapshot(repo) == before


def test_agent_templates_lists_what_ships(aipass_repo: Path, cli):
    doc = json.loads(cli("agent", "templates", "--json", cwd=aipass_repo).out)
    assert {t["name"] for t in doc["templates"]} >= {"default", "orchestrator", "reviewer"}
