import json
import os
from pathlib import Path

from conftest import git, snapshot


def checks_of(result) -> dict[str, dict]:
    return {c["name"]: c for c in json.loads(result.out)["checks"]}


def test_a_fresh_setup_is_healthy(aipass_repo: Path, cli, monkeypatch):
    monkeypatch.setenv("IS_SANDBOX", "1")  # as root, Claude (the default provider) needs it
    before = snapshot(aipass_repo)
    result = cli("doctor", "--json", cwd=aipass_repo)
    assert result.code == 0, result.out
    doc = json.loads(result.out)
    assert doc["ok"] is True
    checks = checks_of(result)
    for name in ("git", "repository", "config", "passports", "gitattributes", "refs"):
        assert checks[name]["status"] == "ok", checks[name]
    assert checks["passports"]["detail"] == "1 of 1 agents valid"
    assert checks["hooks"]["status"] == "warn"  # the fixture is set up with --no-hooks
    assert snapshot(aipass_repo) == before
    table = cli("doctor", cwd=aipass_repo)
    assert table.code == 0 and table.out.splitlines()[0].split() == ["CHECK", "STATUS", "DETAIL"]


def test_a_broken_passport_fails_the_doctor_by_name(aipass_repo: Path, cli):
    cli("agent", "new", "api", "--role", "r", cwd=aipass_repo)
    path = aipass_repo / ".aipass/agents/api/passport.json"
    path.write_text(path.read_text().replace('"status": "active"', '"status": "asleep"'))
    result = cli("doctor", "--json", cwd=aipass_repo)
    assert result.code == 1
    checks = checks_of(result)
    assert checks["agent api"]["status"] == "error"
    assert "passport.json: field 'status': 'asleep'" in checks["agent api"]["detail"]
    assert checks["passports"]["detail"] == "1 of 2 agents valid"


def test_a_broken_memory_file_fails_the_doctor(aipass_repo: Path, cli):
    (aipass_repo / ".aipass/agents/devpulse/memory.json").write_text("{not json")
    result = cli("doctor", "--json", cwd=aipass_repo)
    assert result.code == 1
    assert "memory.json: line 1" in checks_of(result)["agent devpulse"]["detail"]


def test_malformed_aipass_refs_are_reported(aipass_repo: Path, cli):
    head = git(aipass_repo, "rev-parse", "HEAD")
    git(aipass_repo, "update-ref", "refs/aipass/mail/devpulse", head)
    git(aipass_repo, "update-ref", "refs/aipass/junk/x", head)
    git(aipass_repo, "update-ref", "refs/aipass/prs/42", head)
    result = cli("doctor", "--json", cwd=aipass_repo)
    assert result.code == 1
    detail = checks_of(result)["refs"]["detail"]
    assert "refs/aipass/junk/x" in detail and "refs/aipass/prs/42" in detail
    assert "mail/devpulse" not in detail


def test_a_missing_orchestrator_and_bad_config_are_errors(aipass_repo: Path, cli):
    path = aipass_repo / ".aipass/config.yaml"
    path.write_text(path.read_text().replace("orchestrator: devpulse", "orchestrator: boss"))
    result = cli("doctor", "--json", cwd=aipass_repo)
    assert result.code == 1 and "'boss' has no passport" in checks_of(result)["orchestrator"]["detail"]
    path.write_text("v: [\n")
    result = cli("doctor", "--json", cwd=aipass_repo)
    assert result.code == 1 and checks_of(result)["config"]["status"] == "error"


def test_doctor_outside_a_repository(tmp_path: Path, cli):
    result = cli("doctor", "--json", cwd=tmp_path)
    assert result.code == 1
    assert checks_of(result)["repository"]["status"] == "error"


def test_doctor_finds_hooks_where_git_looks_for_them(aipass_repo: Path, cli):
    hooks = aipass_repo / "custom-hooks"
    hooks.mkdir()
    (hooks / "pre-commit").write_text("#!/bin/sh\n# aipass-git hook shim\nexit 0\n")
    git(aipass_repo, "config", "core.hooksPath", "custom-hooks")
    check = checks_of(cli("doctor", "--json", cwd=aipass_repo))["hooks"]
    assert check["status"] == "ok" and "pre-commit" in check["detail"]


def test_providers_that_cannot_run_here_are_named_with_their_agents(aipass_repo: Path, cli, monkeypatch):
    created = cli("agent", "new", "api", "--role", "r", "--provider", "codex", cwd=aipass_repo)
    assert created.code == 0 and "warning: provider 'codex' runs 'codex', which is not on PATH" in created.err
    config = aipass_repo / ".aipass/config.yaml"
    text = config.read_text().replace("argv: [codex, exec, --json,", 'argv: [codex, exec, "{prompt}", --output-format, json,')
    config.write_text(text)
    if os.geteuid() != 0:
        monkeypatch.setattr(os, "geteuid", lambda: 0)  # judge the root rule as root
    result = cli("doctor", "--json", cwd=aipass_repo)
    assert result.code == 1
    found = [c for c in json.loads(result.out)["checks"] if c["name"].startswith("provider ")]
    claude = [c for c in found if c["name"] == "provider claude"]
    assert any(c["status"] == "error" and "bypassPermissions" in c["detail"] and "@devpulse" in c["detail"] for c in claude)
    codex = [c for c in found if c["name"] == "provider codex"]
    details = " ".join(c["detail"] for c in codex)
    assert "not on PATH (used by @api)" in details
    assert "passes the prompt as an argument" in details and "only when it exits" in details
    assert {c["status"] for c in codex} == {"warn"}
