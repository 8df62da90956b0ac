"""The git hooks in real repositories: chaining, branch rules, audits, wakes on fetched mail."""

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from conftest import git, main_in, make_desk
from dispatching import drepo, fake_cli  # noqa: F401 - fixtures

from aipass_git.core.repo import discover
from aipass_git.dispatch.runtime import Runtime
from aipass_git.hooks import install as hooks


def run_git(repo: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, env={**os.environ, **(env or {})})


@pytest.fixture
def hooked(mail_repo: Path, cli) -> Path:
    assert cli("hooks", "install", cwd=mail_repo).code == 0
    return mail_repo


def test_install_chains_an_existing_hook_and_uninstall_restores_it(mail_repo: Path, cli, tmp_path: Path):
    folder = mail_repo / "my-hooks"
    folder.mkdir()
    git(mail_repo, "config", "core.hooksPath", "my-hooks")
    mark = tmp_path / "ran"
    own = folder / "pre-commit"
    own.write_text(f"#!/bin/sh\necho ran >> {mark}\n")
    own.chmod(0o755)
    result = cli("hooks", "install", cwd=mail_repo)
    assert result.code == 0 and str(folder) in result.out
    assert hooks.is_ours(own) and (folder / "pre-commit.aipass-chained").exists()
    status = json.loads(cli("hooks", "status", "--json", cwd=mail_repo).out)
    assert sorted(status["installed"]) == sorted(hooks.HOOKS)
    (mail_repo / "a.txt").write_text("a")
    git(mail_repo, "add", "a.txt")
    git(mail_repo, "commit", "-qm", "a")
    assert mark.read_text() == "ran\n"  # the user's own hook still runs
    assert cli("hooks", "uninstall", cwd=mail_repo).code == 0
    assert own.read_text().startswith("#!/bin/sh\necho ran") and not (folder / "pre-commit.aipass-chained").exists()
    assert not (folder / "pre-push").exists()


def test_a_failing_chained_hook_still_blocks(mail_repo: Path, cli):
    own = mail_repo / ".git/hooks/pre-commit"
    own.write_text("#!/bin/sh\necho 'house rules say no' >&2\nexit 1\n")
    own.chmod(0o755)
    cli("hooks", "install", cwd=mail_repo)
    (mail_repo / "a.txt").write_text("a")
    git(mail_repo, "add", "a.txt")
    proc = run_git(mail_repo, "commit", "-qm", "a")
    assert proc.returncode != 0 and "house rules say no" in proc.stderr


def test_an_agent_may_not_commit_on_the_base_branch_but_the_human_may(hooked: Path):
    (hooked / "a.txt").write_text("a")
    git(hooked, "add", "a.txt")
    refused = run_git(hooked, "commit", "-qm", "sneaky", env={"AIPASS_AGENT": "api"})
    assert refused.returncode != 0
    assert "@api may commit only on its desk branch aipass/api, not on main (the base branch)" in refused.stderr
    assert run_git(hooked, "commit", "-qm", "human").returncode == 0


def test_an_agent_commits_on_its_own_desk_only(hooked: Path):
    desk = make_desk(hooked, "api")
    (desk / "work.txt").write_text("w")
    git(desk, "add", "work.txt")
    assert run_git(desk, "commit", "-qm", "my work").returncode == 0
    (desk / "more.txt").write_text("m")
    git(desk, "add", "more.txt")
    other = run_git(desk, "commit", "-qm", "as docs", env={"AIPASS_AGENT": "docs"})
    assert other.returncode != 0 and "@docs may commit only on its desk branch aipass/docs" in other.stderr


def test_pre_commit_checks_the_staged_aipass_files_and_secrets(hooked: Path):
    path = hooked / ".aipass/agents/api/passport.json"
    doc = json.loads(path.read_text())
    doc["status"] = "sleeping"
    path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    git(hooked, "add", str(path))
    refused = run_git(hooked, "commit", "-qm", "break passport")
    assert refused.returncode != 0 and "passport.json: field 'status'" in refused.stderr
    git(hooked, "checkout", "HEAD", "--", str(path))
    (hooked / "settings.ini").write_text("key = AKIAABCDEFGHIJKLMNOP\n")
    git(hooked, "add", "settings.ini")
    refused = run_git(hooked, "commit", "-qm", "secret")
    assert refused.returncode != 0 and "AWS access key" in refused.stderr


def test_pre_push_keeps_agents_off_the_base_branch(hooked: Path, tmp_path: Path):
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    git(hooked, "remote", "add", "origin", str(remote))
    refused = run_git(hooked, "push", "-q", "origin", "main", env={"AIPASS_AGENT": "api"})
    assert refused.returncode != 0 and "@api may not push to refs/heads/main" in refused.stderr
    assert run_git(hooked, "push", "-q", "origin", "main").returncode == 0
    desk = make_desk(hooked, "api")
    assert run_git(desk, "push", "-q", "origin", "aipass/api").returncode == 0


def test_an_agents_commit_on_the_base_branch_made_past_the_hooks_is_refused_at_push_and_by_the_audit(
        hooked: Path, tmp_path: Path, cli):
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    git(hooked, "remote", "add", "origin", str(remote))
    git(hooked, "push", "-q", "origin", "main")
    # a woken agent's environment (dispatch/environment.py): authored as the agent
    agent = {"AIPASS_AGENT": "api", "GIT_AUTHOR_NAME": "api", "GIT_AUTHOR_EMAIL": "api@aipass.invalid"}
    (hooked / "sneaky.txt").write_text("s")
    git(hooked, "add", "sneaky.txt")
    assert run_git(hooked, "commit", "-qm", "straight onto main", "--no-verify", env=agent).returncode == 0
    refused = run_git(hooked, "push", "-q", "origin", "main")  # the human pushes it, unaware
    assert refused.returncode != 0 and "(straight onto main) was made by @api directly on main" in refused.stderr
    audit = cli("audit", "--only", "branches.no-agent-commits-on-base", cwd=hooked)
    assert audit.code == 1 and "straight onto main" in audit.out
    git(hooked, "reset", "-q", "--hard", "HEAD~1")
    # the same work from the desk, merged with a merge commit, goes out
    desk = make_desk(hooked, "api")
    (desk / "work.txt").write_text("w")
    git(desk, "add", "work.txt")
    assert run_git(desk, "commit", "-qm", "desk work", env=agent).returncode == 0
    git(hooked, "merge", "-q", "--no-ff", "-m", "merge the desk", "aipass/api")
    pushed = run_git(hooked, "push", "-q", "origin", "main")
    assert pushed.returncode == 0, pushed.stderr


def test_pre_push_audits_the_pushed_range(hooked: Path, tmp_path: Path):
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    git(hooked, "remote", "add", "origin", str(remote))
    git(hooked, "push", "-q", "origin", "main")
    (hooked / "notes.txt").write_text("<<<<<<< HEAD\nx\n")
    git(hooked, "add", "notes.txt")
    git(hooked, "-c", "core.hooksPath=/dev/null", "commit", "-qm", "markers")  # skip the commit hook on purpose
    refused = run_git(hooked, "push", "-q", "origin", "main")
    assert refused.returncode != 0 and "notes.txt:1: conflict marker" in refused.stderr


def test_a_dispatch_fetched_from_another_clone_wakes_the_agent(drepo: Path, fake_cli: Path, cli, tmp_path: Path):  # noqa: F811
    assert cli("hooks", "install", cwd=drepo).code == 0
    other = tmp_path / "other-clone"
    git(tmp_path, "clone", "-q", str(drepo), str(other))
    git(other, "config", "user.name", "Remote Human")
    # the other clone's human gets a key there, and this clone's base branch trusts it
    assert main_in(other, "init", "--no-hooks") == 0
    git(drepo, "pull", "-q", "--no-rebase", str(other), "main")
    # the other clone sends the dispatch as mail only: nothing there wakes anyone
    from aipass_git.mail.postoffice import PostOffice

    with PostOffice(discover(other)) as po:
        [task] = po.send(["@api"], "from afar", "please", kind="dispatch")
    git(drepo, "fetch", "-q", str(other), "refs/aipass/mail/*:refs/aipass/mail/*")
    runtime = Runtime(discover(drepo))
    deadline = time.monotonic() + 60
    while not any(e.get("event") == "finished" and e.get("dispatch") == task["id"] for e in runtime.events()):
        assert time.monotonic() < deadline, "the fetched dispatch woke nobody"
        time.sleep(0.1)
    assert any(e.get("event") == "fetched-dispatch" for e in runtime.events())
    [call] = [json.loads(l) for l in (fake_cli / "calls.jsonl").read_text().splitlines()]
    assert call["env"]["AIPASS_DISPATCH"] == task["id"]


def test_aipass_writes_do_not_run_the_hook(hooked: Path, cli, tmp_path: Path):
    # mail written by the tool itself must not go through the reference-transaction hook
    chained = hooked / ".git/hooks/reference-transaction.aipass-chained"
    log = tmp_path / "rt.log"
    chained.write_text(f"#!/bin/sh\ncat >> {log}\n")
    chained.chmod(0o755)
    assert cli("send", "@api", "s", "b", cwd=hooked).code == 0
    assert not log.exists() or "refs/aipass/mail" not in log.read_text()
    git(hooked, "update-ref", "refs/heads/other", "HEAD")
    assert "refs/heads/other" in log.read_text()  # while other ref updates still reach it
