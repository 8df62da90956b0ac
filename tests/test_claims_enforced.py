"""Claims where work happens: globs are git's wildmatch (checked against git itself), the
pre-push hook and the merge queue refuse changes under another's claim, the audit lists
commits that got past the hooks, a dispatch that claims paths waits for them (or
bounces) and runs when they free, a plan phase's claims go with its dispatch, and the
post-commit hook's conflict look shows in status."""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path

import pytest
from conftest import git, make_desk
from dispatching import calls, drepo, fake_cli, plan as plan_runs, state_is, wait_for  # noqa: F401 - fixtures

from aipass_git.claims.matcher import Matcher
from aipass_git.core import wildmatch
from aipass_git.core.repo import discover
from aipass_git.dispatch import dispatcher

API = {"AIPASS_AGENT": "api"}
DOCS = {"AIPASS_AGENT": "docs"}
PATHS = ["README.md", "top.py", "src/a.py", "src/A.PY", "src/a/b.py", "src/api/x/y.py", "src/apix", "src/api.md",
         "docs/r.md", "docs/guide/intro.md", "lib/[x].txt", "a b/c d.txt", "tests/test_a.py", "tests/unit/test_b.py"]
GLOBS = ["src/*", "src/*.py", "**/*.py", "src/api", "docs/", "src/a*", "src/**", "**/test_*.py", "tests/**/test_?.py",
         "src/[a-b].py", "src/[!a].py", "*.md", "**", "a b/*", "docs/**/*.md", "src/api/**", "lib/\\[x].txt", "src/*/*.py"]


@pytest.mark.parametrize("icase", [False, True])
def test_globs_match_what_git_itself_matches(tmp_path: Path, icase: bool):
    repo = tmp_path / "r"
    git(tmp_path, "init", "-q", str(repo))
    for rel in PATHS:
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(rel)
    git(repo, "add", "-A")
    listed = set(git(repo, "ls-files").splitlines())
    magic = "icase,glob" if icase else "glob"
    for glob in GLOBS:
        theirs = set(git(repo, "ls-files", "--", f":({magic}){glob}").splitlines())
        pattern = wildmatch.compile(glob, ignorecase=icase)
        ours = {p for p in listed if pattern.match(p)}
        assert ours == theirs, glob


def test_the_folder_index_finds_what_trying_every_claim_finds():
    rng = random.Random(20)
    globs = GLOBS + [f"pkg{i}/**" for i in range(40)] + [f"pkg{i}/mod{j}.py" for i in range(10) for j in range(5)]
    held = [(f"agent{i % 7}", {"id": str(i), "glob": g}) for i, g in enumerate(rng.sample(globs, 60))]
    paths = PATHS + [f"pkg{rng.randrange(50)}/mod{rng.randrange(8)}.py" for _ in range(300)]
    for icase in (False, True):
        matcher = Matcher(held, ignorecase=icase)
        for path in paths:
            every = [h for h in held if wildmatch.compile(h[1]["glob"], ignorecase=icase).match(path)]
            assert list(matcher.all_covering(path)) == sorted(every, key=lambda h: held.index(h)) or \
                {h[1]["id"] for h in matcher.all_covering(path)} == {h[1]["id"] for h in every}, path


def test_core_ignorecase_makes_claims_case_blind(mail_repo: Path, cli):
    assert cli("hooks", "install", cwd=mail_repo).code == 0
    assert cli("claim", "Lib/**", cwd=mail_repo, env=API).code == 0
    (mail_repo / "lib").mkdir(exist_ok=True)
    (mail_repo / "lib/x.py").write_text("x = 1\n")
    git(mail_repo, "add", "lib/x.py")
    assert commit(mail_repo, "case differs").returncode == 0  # a case-sensitive repository: another path
    git(mail_repo, "config", "core.ignorecase", "true")
    (mail_repo / "lib/x.py").write_text("x = 2\n")
    git(mail_repo, "add", "lib/x.py")
    refused = commit(mail_repo, "the same path to this file system")
    assert refused.returncode != 0 and "lib/x.py is claimed by @api" in refused.stderr


def piped(repo: Path, data: str, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, input=data, capture_output=True, text=True, check=True).stdout.strip()


def commit(repo: Path, message: str, *extra: str):
    return subprocess.run(["git", "commit", "-qm", message, *extra], cwd=repo, capture_output=True, text=True)


def test_pre_push_refuses_commits_into_a_claim_that_skipped_the_commit_hook(mail_repo: Path, cli, tmp_path: Path):
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    git(mail_repo, "remote", "add", "origin", str(remote))
    git(mail_repo, "push", "-q", "origin", "main")
    assert cli("hooks", "install", cwd=mail_repo).code == 0
    assert cli("claim", "src/**", "--reason", "the parser rewrite", cwd=mail_repo, env=API).code == 0
    (mail_repo / "src").mkdir(exist_ok=True)
    (mail_repo / "src/p.py").write_text("p = 1\n")
    git(mail_repo, "add", "src/p.py")
    assert commit(mail_repo, "past the hook", "--no-verify").returncode == 0
    pushed = subprocess.run(["git", "push", "origin", "main"], cwd=mail_repo, capture_output=True, text=True)
    assert pushed.returncode != 0 and "src/p.py is claimed by @api" in pushed.stderr and "the parser rewrite" in pushed.stderr
    assert cli("claim", "release", cwd=mail_repo, env=API).code == 0
    assert subprocess.run(["git", "push", "-q", "origin", "main"], cwd=mail_repo).returncode == 0
    # and the audit names the commit that crossed the claim while it held
    found = json.loads(cli("audit", "--json", "--only", "claims.crossed", cwd=mail_repo).out)
    messages = [f["message"] for f in found["findings"]]
    assert len(messages) == 1 and "@human changed src/p.py" in messages[0] and "@api held" in messages[0]


def test_the_merge_queue_bounces_a_pr_that_changes_a_claimed_path(mail_repo: Path, cli):
    desk = make_desk(mail_repo, "docs")
    (desk / "src").mkdir(exist_ok=True)
    (desk / "src/q.py").write_text("q = 1\n")
    git(desk, "add", "src/q.py")
    git(desk, "commit", "-qm", "docs touches src")
    pr = json.loads(cli("pr", "open", "--json", cwd=desk, env={"AIPASS_AGENT": None}).out)["pr"]
    assert cli("claim", "src/**", cwd=mail_repo, env=API).code == 0
    merged = cli("pr", "merge", pr["id"], "--json", cwd=mail_repo)
    [outcome] = json.loads(merged.out)["outcomes"]
    assert outcome["result"] == "bounced" and "src/q.py, claimed by @api" in outcome["detail"]
    assert "src/q.py" not in git(mail_repo, "ls-tree", "-r", "--name-only", "main")


def test_a_dispatch_waits_for_its_claim_and_runs_when_it_frees(drepo: Path, fake_cli: Path, cli):  # noqa: F811
    assert cli("claim", "src/**", "--reason", "mine for now", cwd=drepo, env=DOCS).code == 0
    repo = discover(drepo)
    sent = dispatcher.dispatch(repo, "api", "change src", "details", meta={"claims": ["src/**"], "if_claimed": "wait"})
    dispatch_id = sent.message["id"]
    row = wait_for(lambda: next((r for r in json.loads(cli("status", "--json", cwd=drepo).out)["agents"]
                                 if r["agent"] == "api" and r["state"] == "claim-wait"), None), "api to wait for the claim")
    assert row["claim_wait"]["holder"] == "docs" and row["claim_wait"]["glob"] == "src/**"
    assert calls(fake_cli) == []  # not woken
    shown = cli("status", cwd=drepo).out
    assert "claim-wait (src/** held by @docs)" in shown
    assert cli("claim", "release", cwd=drepo, env=DOCS).code == 0  # starts api's supervisor again
    done = dispatcher.wait(repo, dispatch_id, timeout=60)
    assert done["result"] == "ok" and [c["env"]["AIPASS_AGENT"] for c in calls(fake_cli)] == ["api"]
    history = git(drepo, "log", "--format=%(trailers:key=Aipass-Event,valueonly)", "refs/aipass/claims/api").split()
    assert history == ["released", "claimed"]  # claimed before the wake, released when the session ended
    assert json.loads(cli("status", "--json", cwd=drepo).out)["agents"][0]["claim_wait"] is None


def test_a_dispatch_that_bounces_on_a_claim_says_who_holds_it(drepo: Path, fake_cli: Path, cli):  # noqa: F811
    assert cli("claim", "docs/**", cwd=drepo, env=DOCS).code == 0
    refused = cli("dispatch", "@api", "edit the docs", "x", "--claim", "docs/**", "--if-claimed", "bounce", "--wait", cwd=drepo)
    assert refused.code == 1 and "docs/** is claimed by @docs" in refused.out
    assert calls(fake_cli) == []
    assert cli("dispatch", "@api", "x", "y", "--if-claimed", "bounce", cwd=drepo).code == 2  # only with --claim
    assert cli("dispatch", "@api", "x", "y", "--claim", "../up/**", cwd=drepo).code == 2


def test_a_plan_phase_claims_its_paths_for_its_owner(drepo: Path, fake_cli: Path, cli):  # noqa: F811
    folder = drepo / ".aipass/plan-templates"
    folder.mkdir()
    (folder / "claimed.yaml").write_text('description: "one phase that claims"\nphases:\n'
                                         '  - {name: build, owner: api, task: "build {title}", claims: ["src/{title}/**"]}\n')
    plan_runs(fake_cli, "api", "reply")
    made = json.loads(cli("plan", "new", "parser", "-t", "claimed", "--json", cwd=drepo).out)
    doc = made["plan"]
    assert doc["phases"][0]["claims"] == ["src/parser/**"]
    wait_for(lambda: json.loads(cli("plan", "show", doc["id"], "--json", cwd=drepo).out)["plan"]["state"] == "closed",
             "the plan to close", seconds=60)
    claimed = json.loads(cli("claim", "list", "--all", "--json", cwd=drepo).out)["claims"]
    assert [(c["claimant"], c["glob"], c["active"]) for c in claimed] == [("api", "src/parser/**", False)]


def test_a_commit_on_a_desk_looks_for_conflicts_ahead_and_status_shows_them(mail_repo: Path, cli):
    assert cli("hooks", "install", cwd=mail_repo).code == 0
    (mail_repo / "notes.md").write_text("one\ntwo\nthree\n")
    git(mail_repo, "add", "notes.md")
    git(mail_repo, "commit", "-qm", "notes")
    for agent in ("api", "docs"):
        desk = make_desk(mail_repo, agent)
        (desk / "notes.md").write_text(f"one\ntwo by {agent}\nthree\n")
        git(desk, "commit", "-qam", f"{agent} edits")  # the post-commit hook looks in the background
    told = wait_for(lambda: [m for m in json.loads(cli("inbox", "@api", "--json", cwd=mail_repo).out)["messages"]
                             if m["subject"] == "conflict ahead: notes.md"], "the post-commit look to mail @api")
    assert len(told) == 1
    status = json.loads(cli("status", "--json", cwd=mail_repo).out)
    assert {"agents": ["api", "docs"], "files": ["notes.md"]} in status["conflicts"]
    assert "conflicts ahead" in cli("status", cwd=mail_repo).out


def test_a_killed_sessions_claims_are_released_by_its_recovery(drepo: Path, fake_cli: Path, cli):  # noqa: F811
    import os
    import signal

    from dispatching import configure

    configure(drepo, crash_retries="0")
    plan_runs(fake_cli, "api", "stuck")
    repo = discover(drepo)
    sent = dispatcher.dispatch(repo, "api", "doomed", "b", meta={"claims": ["src/**"], "if_claimed": "wait"})
    wait_for(lambda: (fake_cli / "stuck-api.pid").exists(), "the fake CLI to start")
    state = wait_for(lambda: state_is(drepo, "api", "running"), "api to run")
    assert [c["glob"] for c in json.loads(cli("claim", "list", "--json", cwd=drepo).out)["claims"]] == ["src/**"]
    os.kill(state["pid"], signal.SIGKILL)
    outcome = dispatcher.wait(repo, sent.message["id"], timeout=60, agent="api")
    assert outcome["result"] == "crashed"
    assert json.loads(cli("claim", "list", "--json", cwd=drepo).out)["claims"] == []
    assert cli("claim", "src/**", cwd=drepo, env=DOCS).code == 0  # free for others at once


def test_a_forged_claim_blocks_nobody_and_the_audit_names_it(mail_repo: Path, cli):
    assert cli("hooks", "install", cwd=mail_repo).code == 0
    doc = {"v": 1, "claimant": "api", "released": [], "claims": [{
        "id": "01m8sg9fr3v4944ztyhwdm38ga", "glob": "**", "mode": "exclusive", "reason": "mine, all of it",
        "created": "2026-01-01T00:00:00Z", "expires": "2999-01-01T00:00:00Z", "by": "api"}]}
    blob = piped(mail_repo, json.dumps(doc), "hash-object", "-w", "--stdin")
    tree = piped(mail_repo, f"100644 blob {blob}\tclaims.json\n", "mktree")
    forged = git(mail_repo, "commit-tree", tree, "-m", "claim: @api claims **\n\nAipass-Event: claimed\n")
    git(mail_repo, "update-ref", "refs/aipass/claims/api", forged)
    (mail_repo / "free.txt").write_text("still mine to change\n")
    git(mail_repo, "add", "free.txt")
    assert commit(mail_repo, "not blocked by a forgery").returncode == 0
    listed = cli("claim", "list", cwd=mail_repo)
    assert listed.out.strip() == "no claims" and "the claims of @api are not enforced" in listed.err
    found = json.loads(cli("audit", "--json", "--only", "claims.proven", cwd=mail_repo).out)["findings"]
    assert len(found) == 1 and "the claims of @api are not enforced: event" in found[0]["message"] and "unsigned" in found[0]["message"]


def test_claims_that_expired_long_ago_leave_the_document_at_the_next_claim(mail_repo: Path, cli):
    from aipass_git.agents.session import Session
    from aipass_git.claims import claim as claim_mod
    from aipass_git.store.events import EventStore

    assert cli("claim", "old/**", "recent/**", cwd=mail_repo, env=API).code == 0
    repo = discover(mail_repo)
    with EventStore(repo) as store:
        doc = claim_mod.ClaimBook(store).get("api")
        aged = {"old/**": "2020-01-01T00:00:00Z", "recent/**": claim_mod.clock.utc_now()}  # one long gone, one just ended
        doc["claims"] = [{**c, "expires": aged[c["glob"]]} for c in doc["claims"]]

        def backdate(view):
            view.write(claim_mod.FILE, json.dumps(doc).encode())
            from aipass_git.store.events import Event
            return Event("claimed", "test: backdate", Session.of_agent(repo, "api").speaker.author)
        store.append(claim_mod.ref_for("api"), backdate)
    assert cli("claim", "new/**", cwd=mail_repo, env=API).code == 0
    kept = json.loads(cli("claim", "list", "--all", "--json", cwd=mail_repo).out)["claims"]
    assert sorted(c["glob"] for c in kept) == ["new/**", "recent/**"]


def test_doctor_finds_claims_no_session_holds_and_fix_releases_them(mail_repo: Path, cli, monkeypatch):
    from aipass_git.setup import leftovers

    assert cli("claim", "src/**", cwd=mail_repo, env=API).code == 0  # by hand: no session will release it
    assert "stale-claim" not in cli("doctor", cwd=mail_repo).out  # young: maybe a session just starting
    monkeypatch.setattr(leftovers, "STALE_CLAIM_MINUTES", -1)
    shown = cli("doctor", cwd=mail_repo).out
    assert "@api has no session but holds 1 claim (src/**)" in shown
    fixed = cli("doctor", "--fix", cwd=mail_repo)
    assert "released @api's 1 stale claim" in fixed.out
    assert json.loads(cli("claim", "list", "--json", cwd=mail_repo).out)["claims"] == []
