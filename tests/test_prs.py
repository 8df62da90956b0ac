"""PRs and the merge queue on real repositories, with real processes for the races."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import git, make_desk

from aipass_git.core.repo import discover

AS_ORCHESTRATOR = {"AIPASS_AGENT": "devpulse"}


def agent_pr(cli, repo: Path, agent: str, files: dict[str, str], title: str | None = None) -> dict:
    desk = repo.parent / f"desk-{agent}"
    if not desk.exists():
        make_desk(repo, agent)
    for rel, text in files.items():
        (desk / rel).parent.mkdir(parents=True, exist_ok=True)
        (desk / rel).write_text(text)
    git(desk, "add", "-A")
    git(desk, "commit", "-qm", title or f"{agent}: work")
    result = cli("pr", "open", "--json", cwd=desk, env={"AIPASS_AGENT": None})
    assert result.code == 0, result.err
    return json.loads(result.out)["pr"]


def prs(cli, repo, state="all") -> list[dict]:
    return json.loads(cli("pr", "list", "--state", state, "--json", cwd=repo).out)["prs"]


def test_open_records_the_pr_and_tells_the_orchestrator(mail_repo: Path, cli):
    pr = agent_pr(cli, mail_repo, "api", {"src/api.py": "x = 1\n"}, "api: first endpoint")
    assert pr["state"] == "open" and pr["branch"] == "aipass/api" and pr["base"] == "main" and pr["agent"] == "api"
    assert pr["title"] == "api: first endpoint"
    ref = f"refs/aipass/prs/{pr['id']}"
    assert git(mail_repo, "log", "--format=%s", ref) == f"pr: api opened {pr['id'][:12]}: api: first endpoint"
    inbox = json.loads(cli("inbox", "@devpulse", "--json", cwd=mail_repo).out)["messages"]
    assert [(m["kind"], m["from"]) for m in inbox] == [("pr", "api")]
    again = cli("pr", "open", cwd=mail_repo.parent / "desk-api", env={"AIPASS_AGENT": None})
    assert again.code == 0 and "nothing changed" in again.out
    updated = agent_pr(cli, mail_repo, "api", {"src/api.py": "x = 2\n"})
    assert updated["id"] == pr["id"] and updated["head"] != pr["head"]
    assert len(prs(cli, mail_repo)) == 1


def test_open_is_for_desks_with_work(mail_repo: Path, cli):
    on_main = cli("pr", "open", cwd=mail_repo)
    assert on_main.code == 2 and "agent's desk" in on_main.err
    desk = make_desk(mail_repo, "api")
    empty = cli("pr", "open", cwd=desk, env={"AIPASS_AGENT": None})
    assert empty.code == 2 and "no commits that main lacks" in empty.err
    assert prs(cli, mail_repo) == []


def test_merge_moves_the_base_brings_its_worktree_and_tells_the_author(mail_repo: Path, cli):
    pr = agent_pr(cli, mail_repo, "api", {"src/api.py": "x = 1\n"})
    base_before = git(mail_repo, "rev-parse", "main")
    result = cli("pr", "merge", pr["id"][:10], cwd=mail_repo)
    assert result.code == 0 and "merged as" in result.out
    merge = git(mail_repo, "rev-parse", "main")
    assert git(mail_repo, "rev-parse", "main^1") == base_before and git(mail_repo, "rev-parse", "main^2") == pr["head"]
    assert (mail_repo / "src/api.py").read_text() == "x = 1\n"  # the checked-out base came along
    assert git(mail_repo, "status", "--porcelain") == ""
    [merged] = prs(cli, mail_repo)
    assert merged["state"] == "merged" and merged["merge_commit"] == merge
    mail = json.loads(cli("inbox", "@api", "--json", cwd=mail_repo).out)["messages"]
    assert any(m["subject"].startswith("merged:") for m in mail)
    events = [e["event"] for e in json.loads(cli("pr", "show", pr["id"], "--json", cwd=mail_repo).out)["pr"]["events"]]
    assert events == ["told", "merged", "audited", "opened"]
    # the desk is brought up to date before the agent's next wake
    from aipass_git.agents.desk import Desk
    from aipass_git.core import config as config_mod

    repo = discover(mail_repo)
    desk = Desk(repo, config_mod.load(repo), "api")
    desk.path = (mail_repo.parent / "desk-api").resolve()
    assert desk.ensure().updated and git(desk.path, "rev-parse", "HEAD") == merge


def test_a_conflict_bounces_with_the_files(mail_repo: Path, cli):
    first = agent_pr(cli, mail_repo, "api", {"shared.txt": "api's version\n", "a.txt": "a\n"})
    second = agent_pr(cli, mail_repo, "docs", {"shared.txt": "docs' version\n", "b.txt": "b\n"})
    result = cli("pr", "merge", "--all", "--json", cwd=mail_repo)
    assert result.code == 1
    outcomes = {o["pr"]: o for o in json.loads(result.out)["outcomes"]}
    assert outcomes[first["id"]]["result"] == "merged"
    assert outcomes[second["id"]]["result"] == "bounced" and outcomes[second["id"]]["conflicts"] == ["shared.txt"]
    assert not (mail_repo / "b.txt").exists()
    bounced = json.loads(cli("pr", "show", second["id"], "--json", cwd=mail_repo).out)["pr"]
    assert bounced["state"] == "bounced" and bounced["conflicts"] == ["shared.txt"]
    mail = json.loads(cli("inbox", "@docs", "--json", cwd=mail_repo).out)["messages"]
    body = json.loads(cli("read", mail[0]["id"], "--json", cwd=mail_repo, env={"AIPASS_AGENT": "docs"}).out)["body"]
    assert "Conflicting files:\n  shared.txt" in body


def test_a_failing_audit_bounces_and_merges_nothing(mail_repo: Path, cli):
    pr = agent_pr(cli, mail_repo, "api", {"notes.txt": "<<<<<<< HEAD\nmine\n=======\ntheirs\n>>>>>>> x\n"})
    before = git(mail_repo, "rev-parse", "main")
    result = cli("pr", "merge", pr["id"], "--json", cwd=mail_repo)
    assert result.code == 1
    [outcome] = json.loads(result.out)["outcomes"]
    assert outcome["result"] == "bounced" and any("conflict marker" in f for f in outcome["findings"])
    assert git(mail_repo, "rev-parse", "main") == before


def test_a_head_that_moved_after_opening_is_rechecked(mail_repo: Path, cli):
    pr = agent_pr(cli, mail_repo, "api", {"a.txt": "1\n"})
    desk = mail_repo.parent / "desk-api"
    (desk / "a.txt").write_text("2\n")
    git(desk, "commit", "-qam", "more work, no pr open")
    moved = git(desk, "rev-parse", "HEAD")
    assert cli("pr", "merge", pr["id"], cwd=mail_repo).code == 0
    assert git(mail_repo, "rev-parse", "main^2") == moved
    events = [e["event"] for e in json.loads(cli("pr", "show", pr["id"], "--json", cwd=mail_repo).out)["pr"]["events"]]
    assert events == ["told", "merged", "audited", "updated", "opened"]


def test_agents_may_not_merge(mail_repo: Path, cli):
    pr = agent_pr(cli, mail_repo, "api", {"a.txt": "1\n"})
    refused = cli("pr", "merge", pr["id"], cwd=mail_repo.parent / "desk-api", env={"AIPASS_AGENT": None})
    assert refused.code == 2 and "agents never merge their own work" in refused.err
    assert cli("pr", "merge", pr["id"], cwd=mail_repo, env=AS_ORCHESTRATOR).code == 0


def test_bad_merges(mail_repo: Path, cli):
    assert cli("pr", "merge", "zzzz", cwd=mail_repo).code == 2
    pr = agent_pr(cli, mail_repo, "api", {"a.txt": "1\n"})
    # a dirty checkout of the base: refused, nothing written
    (mail_repo / "src/app.py").write_text("print('local edit')\n")
    before = git(mail_repo, "for-each-ref")
    dirty = cli("pr", "merge", pr["id"], cwd=mail_repo)
    assert dirty.code == 2 and "uncommitted changes" in dirty.err and git(mail_repo, "for-each-ref") == before
    git(mail_repo, "checkout", "--", "src/app.py")
    # the branch deleted after opening: bounced with the reason
    git(mail_repo, "worktree", "remove", "--force", str(mail_repo.parent / "desk-api"))
    git(mail_repo, "branch", "-D", "aipass/api")
    gone = json.loads(cli("pr", "merge", pr["id"], "--json", cwd=mail_repo).out)["outcomes"][0]
    assert gone["result"] == "bounced" and "was deleted" in gone["detail"]
    # the PR of an agent retired since
    other = agent_pr(cli, mail_repo, "docs", {"d.txt": "d\n"})
    cli("agent", "retire", "docs", cwd=mail_repo)
    retired = cli("pr", "merge", other["id"], cwd=mail_repo)
    assert retired.code == 2 and "retired" in retired.err
    # the base branch gone
    third = agent_pr(cli, mail_repo, "quality", {"q.txt": "q\n"})
    git(mail_repo, "branch", "-m", "main", "trunk")
    missing = cli("pr", "merge", third["id"], cwd=mail_repo)
    assert missing.code == 2 and "base branch 'main' does not exist" in missing.err


def test_close(mail_repo: Path, cli):
    pr = agent_pr(cli, mail_repo, "api", {"a.txt": "1\n"})
    assert cli("pr", "close", pr["id"], cwd=mail_repo.parent / "desk-api", env={"AIPASS_AGENT": None}).code == 0
    assert prs(cli, mail_repo, "closed")[0]["id"] == pr["id"]
    assert json.loads(cli("pr", "merge", pr["id"], "--json", cwd=mail_repo).out)["outcomes"][0]["result"] == "skipped"


MERGER = """
import sys
from aipass_git.core.repo import discover
from aipass_git.prs.queue import MergeQueue
queue = MergeQueue(discover(sys.argv[1]))
for o in queue.merge_all():
    print(o.pr, o.result, flush=True)
"""


@pytest.fixture
def thirty_prs(mail_repo: Path, cli) -> tuple[Path, list[dict], set[str]]:
    from aipass_git.agents.registry import Registry

    registry = Registry(discover(mail_repo))
    opened, conflicting = [], set()
    for i in range(30):
        name = f"w{i:02d}"
        registry.create(name, role="works", provider="command")
        files = {f"work/{name}.txt": f"{name}\n"}
        if i % 10 == 9:  # three of them touch a file another one also changed
            files["shared/hot.txt"] = f"{name} was here\n"
        opened.append(agent_pr(cli, mail_repo, name, files))
    conflicting = {p["id"] for p, i in zip(opened, range(30)) if i % 10 == 9}
    return mail_repo, opened, conflicting


def test_three_queues_at_once_merge_each_pr_exactly_once(thirty_prs, cli):
    repo, opened, hot = thirty_prs
    procs = [subprocess.Popen([sys.executable, "-c", MERGER, str(repo)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        results += [line.split() for line in out.splitlines()]
    acted = [(pr, r) for pr, r in results if r != "skipped"]
    assert sorted(pr for pr, _ in acted) == sorted(p["id"] for p in opened)  # each exactly once
    final = {p["id"]: p for p in prs(cli, repo)}
    merged = [i for i, p in final.items() if p["state"] == "merged"]
    bounced = [i for i, p in final.items() if p["state"] == "bounced"]
    assert len(merged) + len(bounced) == 30
    assert set(bounced) <= hot and len(bounced) == len(hot) - 1  # the first hot one merges
    for i in bounced:
        assert final[i]["conflicts"] == ["shared/hot.txt"]
    history = set(git(repo, "rev-list", "main").splitlines())
    for i in merged:
        assert final[i]["merge_commit"] in history and final[i]["head"] in history
    assert git(repo, "rev-list", "--count", "--merges", "main") == str(len(merged))
    assert git(repo, "status", "--porcelain") == ""
