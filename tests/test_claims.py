"""Claims: exclusive ones do not overlap, shared ones may, the pre-commit hook refuses a
commit into someone else's claim (renames by both names), release and expiry free it,
--force takes over and tells the holder, and claims travel with sync."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import git, main_in
from dispatching import drepo, fake_cli  # noqa: F401 - fixtures

from aipass_git.agents.session import Session
from aipass_git.claims import claim as claim_mod
from aipass_git.core.repo import discover
from aipass_git.store.events import Event, EventStore

API = {"AIPASS_AGENT": "api"}
DOCS = {"AIPASS_AGENT": "docs"}


def test_exclusive_claims_do_not_overlap_and_force_tells_the_holder(mail_repo: Path, cli):
    made = cli("claim", "src/parser/**", "--reason", "rewriting the parser", "--json", cwd=mail_repo, env=API)
    assert made.code == 0, made.err
    refused = cli("claim", "src/parser/**", cwd=mail_repo, env=DOCS)
    assert refused.code == 2 and "claimed by @api until" in refused.err and "rewriting the parser" in refused.err
    assert cli("claim", "src/parser/**", "--shared", cwd=mail_repo, env=DOCS).code == 0  # a heads-up, not a lock
    assert cli("claim", "src/parser/**", "--force", cwd=mail_repo, env=DOCS).code == 2  # only the human or orchestrator
    listed = json.loads(cli("claim", "list", "--json", cwd=mail_repo).out)["claims"]
    assert sorted((c["claimant"], c["mode"]) for c in listed) == [("api", "exclusive"), ("docs", "shared")]
    taken = cli("claim", "src/parser/**", "--force", "--reason", "hotfix", cwd=mail_repo)
    assert taken.code == 0, taken.err
    told = json.loads(cli("inbox", "@api", "--json", cwd=mail_repo).out)["messages"]
    assert [m["subject"] for m in told] == ["your claim on src/parser/** was taken by @human"]
    listed = json.loads(cli("claim", "list", "--json", cwd=mail_repo).out)["claims"]
    assert sorted(c["claimant"] for c in listed if c["mode"] == "exclusive") == ["human"]
    assert cli("claim", "release", cwd=mail_repo).out.strip() == "released 1 claim"
    assert cli("claim", "../outside/**", cwd=mail_repo).code == 2
    assert cli("claim", "src/**", "--ttl", "soon", cwd=mail_repo).code == 2


def test_the_hook_refuses_a_commit_into_someone_elses_claim_until_it_ends(mail_repo: Path, cli):
    assert cli("hooks", "install", cwd=mail_repo).code == 0
    (mail_repo / "lib").mkdir(exist_ok=True)
    (mail_repo / "lib/core.py").write_text("x = 1\n")
    git(mail_repo, "add", "lib/core.py")
    git(mail_repo, "commit", "-qm", "a core module")
    assert cli("claim", "lib/core.py", "--reason", "refactoring", cwd=mail_repo, env=API).code == 0
    git(mail_repo, "mv", "lib/core.py", "lib/base.py")  # a rename out of the claim counts
    refused = git_commit(mail_repo, "move it")
    assert refused.returncode != 0 and "lib/core.py is claimed by @api" in refused.stderr and "refactoring" in refused.stderr
    assert cli("claim", "release", "lib/core.py", cwd=mail_repo, env=API).code == 0
    assert git_commit(mail_repo, "move it").returncode == 0

    assert cli("claim", "lib/base.py", cwd=mail_repo, env=API).code == 0
    (mail_repo / "lib/base.py").write_text("x = 2\n")
    git(mail_repo, "add", "lib/base.py")
    assert git_commit(mail_repo, "change it").returncode != 0
    repo = discover(mail_repo)  # the claim's time runs out (written as a clock hours on would see it)
    with EventStore(repo) as store:
        doc = claim_mod.ClaimBook(store).get("api")
        late = [{**c, "expires": "2000-01-01T00:00:00Z"} for c in doc["claims"]]

        def expire(view):
            current = json.loads(view.read(claim_mod.FILE))
            current["claims"] = late
            view.write(claim_mod.FILE, json.dumps(current).encode())
            return Event("test", "test: expire", Session.open(repo).speaker.author)
        store.append(claim_mod.ref_for("api"), expire)
    assert git_commit(mail_repo, "change it").returncode == 0
    assert cli("claim", "list", cwd=mail_repo).out.strip() == "no claims"


def git_commit(repo: Path, message: str):
    import subprocess

    return subprocess.run(["git", "commit", "-qm", message], cwd=repo, capture_output=True, text=True)


def test_a_claim_made_in_one_clone_holds_in_another_after_sync(mail_repo: Path, cli, tmp_path: Path):
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    git(mail_repo, "remote", "add", "origin", remote.as_uri())
    git(mail_repo, "push", "-q", "origin", "HEAD:main")
    assert cli("claim", "docs/**", "--reason", "the guide", cwd=mail_repo, env=DOCS).code == 0
    assert main_in(mail_repo, "sync") == 0
    b = tmp_path / "b"
    assert cli("clone", remote.as_uri(), str(b), cwd=tmp_path).code == 0
    (b / "docs").mkdir(exist_ok=True)
    (b / "docs/guide.md").write_text("# Guide\n")
    git(b, "add", "docs/guide.md")
    refused = git_commit(b, "a guide")
    assert refused.returncode != 0 and "claimed by @docs" in refused.stderr
    listed = json.loads(cli("claim", "list", "--json", cwd=b).out)["claims"]
    assert [(c["claimant"], c["glob"]) for c in listed] == [("docs", "docs/**")]


def test_a_session_that_ends_or_an_agent_that_retires_releases_its_claims(drepo: Path, fake_cli: Path, cli):  # noqa: F811
    from dispatching import plan as plan_runs, run_dispatch

    plan_runs(fake_cli, "api", "claim")
    run_dispatch(drepo, "api", "work on src")
    history = git(drepo, "log", "--format=%(trailers:key=Aipass-Event,valueonly)", "refs/aipass/claims/api").split()
    assert history == ["released", "claimed"]  # claimed during the run, released when it ended
    assert cli("claim", "list", "--json", cwd=drepo).out.count('"glob"') == 0
    assert cli("claim", "tests/**", cwd=drepo, env={"AIPASS_AGENT": "docs"}).code == 0
    assert cli("agent", "retire", "docs", cwd=drepo).code == 0
    assert json.loads(cli("claim", "list", "--json", cwd=drepo).out)["claims"] == []


def test_two_desks_changing_the_same_lines_hear_of_it_once(mail_repo: Path, cli):
    from conftest import make_desk

    (mail_repo / "notes.md").write_text("one\ntwo\nthree\n")
    git(mail_repo, "add", "notes.md")
    git(mail_repo, "commit", "-qm", "notes")
    desks = {}
    for agent, line in (("api", "two by api"), ("docs", "two by docs"), ("quality", None)):
        desks[agent] = make_desk(mail_repo, agent)
        if line:
            (desks[agent] / "notes.md").write_text(f"one\n{line}\nthree\n")
            git(desks[agent], "commit", "-qam", f"{agent} edits")
    (desks["quality"] / "other.md").write_text("elsewhere\n")  # a live desk that shares no file
    git(desks["quality"], "add", "other.md")
    git(desks["quality"], "commit", "-qm", "quality edits")
    found = json.loads(cli("conflicts", "--tell", "--json", cwd=mail_repo).out)
    assert found["conflicts"] == [{"agents": ["api", "docs"], "files": ["notes.md"]}]
    assert found["told"] == found["conflicts"]
    for who in ("@api", "@docs"):
        [told] = json.loads(cli("inbox", who, "--json", cwd=mail_repo).out)["messages"]
        assert told["subject"] == "conflict ahead: notes.md"
        body = json.loads(cli("read", told["id"], "--json", cwd=mail_repo, env={"AIPASS_AGENT": who[1:]}).out)["body"]
        assert "--- notes.md" in body and "two by api" in body and "two by docs" in body  # the hunk itself
    again = json.loads(cli("conflicts", "--tell", "--json", cwd=mail_repo).out)
    assert again["conflicts"] == found["conflicts"] and again["told"] == []  # once per pair and files
    (mail_repo / "notes.md").write_text("one\ntwo on main\nthree\n")
    git(mail_repo, "commit", "-qam", "main edits too")
    with_base = json.loads(cli("conflicts", "--json", cwd=mail_repo).out)["conflicts"]
    assert {"agents": ["api", "main"], "files": ["notes.md"]} in with_base
