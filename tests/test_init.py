import json
import subprocess
from pathlib import Path

from conftest import git, snapshot

from aipass_git.core import config


def test_init_writes_config_orchestrator_attributes_in_one_commit(repo: Path, cli):
    before = git(repo, "rev-parse", "HEAD")
    result = cli("init", cwd=repo)
    assert result.code == 0, result.err
    assert "orchestrator @devpulse" in result.out
    assert git(repo, "rev-parse", "HEAD~1") == before
    committed = set(git(repo, "show", "--name-only", "--format=", "HEAD").splitlines())
    [human_key] = [p for p in committed if p.startswith(".aipass/humans/")]
    assert committed - {human_key} == {
        ".aipass/config.yaml",
        ".aipass/agents/devpulse/passport.json",
        ".aipass/agents/devpulse/memory.json",
        ".aipass/agents/devpulse/README.md",
        ".aipass/allowed_signers",
        ".gitattributes",
    }
    assert git(repo, "log", "-1", "--format=%s") == "aipass: set up aipass-git"
    assert git(repo, "status", "--porcelain") == ""
    cfg = config.read(repo / ".aipass/config.yaml", "config.yaml")
    assert cfg.orchestrator == "devpulse" and cfg.base_branch == "main"
    passport = json.loads((repo / ".aipass/agents/devpulse/passport.json").read_text())
    assert passport["template"] == "orchestrator" and passport["status"] == "active"
    assert "diff=aipass-memory" in (repo / ".gitattributes").read_text()
    assert git(repo, "check-attr", "merge", "--", ".aipass/agents/devpulse/memory.json").endswith("aipass-memory")


def test_second_init_changes_nothing_and_says_so(aipass_repo: Path, cli):
    first = cli("init", cwd=aipass_repo)  # the fixture skipped the hooks: this installs them
    assert first.code == 0 and "hooks (pre-commit" in first.out
    before = snapshot(aipass_repo)
    result = cli("init", cwd=aipass_repo)
    assert result.code == 0
    assert "nothing changed" in result.out
    assert snapshot(aipass_repo) == before
    as_json = json.loads(cli("init", "--json", cwd=aipass_repo).out)
    assert as_json["changed"] is False and as_json["commit"] is None


def test_init_in_a_repository_without_commits(tmp_path: Path, cli):
    git(tmp_path, "init", "-q", "fresh")
    fresh = tmp_path / "fresh"
    result = cli("init", cwd=fresh)
    assert result.code == 0, result.err
    assert git(fresh, "rev-list", "--count", "HEAD") == "1"
    assert git(fresh, "status", "--porcelain") == ""


def test_init_from_a_subfolder_sets_up_the_top_level(repo: Path, cli):
    result = cli("init", cwd=repo / "src")
    assert result.code == 0, result.err
    assert (repo / ".aipass/config.yaml").is_file()
    assert not (repo / "src/.aipass").exists()


def test_init_keeps_staged_work_of_the_user_out_of_its_commit(repo: Path, cli):
    (repo / "src/app.py").write_text("print('changed')\n")
    (repo / "notes.txt").write_text("mine\n")
    git(repo, "add", "src/app.py", "notes.txt")
    assert cli("init", cwd=repo).code == 0
    assert "src/app.py" not in git(repo, "show", "--name-only", "--format=", "HEAD")
    staged = git(repo, "diff", "--cached", "--name-only").splitlines()
    assert staged == ["notes.txt", "src/app.py"]


def test_init_keeps_an_existing_gitattributes(repo: Path, cli):
    (repo / ".gitattributes").write_text("*.png binary\n")
    git(repo, "add", ".gitattributes")
    git(repo, "commit", "-qm", "attrs")
    assert cli("init", cwd=repo).code == 0
    text = (repo / ".gitattributes").read_text()
    assert text.startswith("*.png binary\n") and "aipass" in text


def test_init_with_a_chosen_orchestrator(repo: Path, cli):
    assert cli("init", "--orchestrator", "@boss", cwd=repo).code == 0
    assert (repo / ".aipass/agents/boss/passport.json").is_file()
    refused = cli("init", "--orchestrator", "other", cwd=repo)
    assert refused.code == 2 and "already set up with orchestrator 'boss'" in refused.err


def test_init_repairs_a_missing_orchestrator(aipass_repo: Path, cli):
    git(aipass_repo, "rm", "-rq", ".aipass/agents/devpulse")
    git(aipass_repo, "commit", "-qm", "oops")
    result = cli("init", cwd=aipass_repo)
    # the passport, memory and README, and the signers with the new orchestrator key
    assert result.code == 0 and "4 files committed" in result.out
    assert (aipass_repo / ".aipass/agents/devpulse/passport.json").is_file()


def test_init_outside_a_repository_is_refused(tmp_path: Path, cli):
    result = cli("init", cwd=tmp_path)
    assert result.code == 2
    assert result.err.startswith("error: not a git repository")
    assert "hint: " in result.err
    assert list(tmp_path.iterdir()) == []


def test_init_in_a_bare_repository_is_refused(tmp_path: Path, cli):
    git(tmp_path, "init", "-q", "--bare", "b.git")
    bare = tmp_path / "b.git"
    before = sorted(p.name for p in bare.iterdir())
    result = cli("init", cwd=bare)
    assert result.code == 2 and "bare repository" in result.err
    assert sorted(p.name for p in bare.iterdir()) == before


def test_init_inside_the_git_dir_is_refused(repo: Path, cli):
    result = cli("init", cwd=repo / ".git")
    assert result.code == 2 and "working tree" in result.err


def test_init_with_a_malformed_config_reports_the_line_and_writes_nothing(aipass_repo: Path, cli):
    path = aipass_repo / ".aipass/config.yaml"
    path.write_text(path.read_text().replace("base_branch: main", "base_branch: [main"))
    git(aipass_repo, "commit", "-qam", "break it")
    before = snapshot(aipass_repo)
    result = cli("init", cwd=aipass_repo)
    assert result.code == 2
    assert "error: .aipass/config.yaml: line" in result.err and "not valid YAML" in result.err
    assert snapshot(aipass_repo) == before


def test_a_rejected_commit_leaves_nothing_behind(repo: Path, cli):
    hook = repo / ".git/hooks/pre-commit"
    hook.write_text("#!/bin/sh\necho 'policy says no' >&2\nexit 1\n")
    hook.chmod(0o755)
    before = snapshot(repo)
    result = cli("init", cwd=repo)
    assert result.code == 1
    assert "policy says no" in result.err and "hint:" in result.err
    assert snapshot(repo) == before
    assert not (repo / ".aipass").exists()


def test_commits_are_made_as_the_git_user(aipass_repo: Path):
    assert git(aipass_repo, "log", "-1", "--format=%an <%ae>") == "Test Human <human@example.invalid>"
    proc = subprocess.run(["git", "fsck", "--strict"], cwd=aipass_repo, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
