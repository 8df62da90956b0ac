"""Plans: templates fill and validate, the phase graph refuses cycles, plans are events on
their own ref, `ready` follows the graph, phases end by their rule (a reply, a merged PR, a
clean audit, an approval) or fail (a bounce, an audit finding, a timeout), a closed plan
is remembered, and plans travel and advance across clones with sync."""

import json
from pathlib import Path

import pytest
import subprocess
import sys

from conftest import git, main_in
from dispatching import calls, drepo, events, fake_cli, plan as plan_runs, wait_for  # noqa: F401 - fixtures

from aipass_git.agents.session import Session
from aipass_git.core.repo import discover
from aipass_git.plans import plan as plan_mod, templates as templates_mod
from aipass_git.store.events import EventStore

PARAMS = {"agent": "api", "designer": "api", "builder": "api", "second": "docs", "reviewer": "quality",
          "version": "1.2.0"}


@pytest.mark.parametrize("name", sorted(templates_mod.available(None)))
def test_every_shipped_template_fills_validates_and_renders(name: str):
    tpl = templates_mod.available(None)[name]
    phases = templates_mod.fill(tpl, "Ship the parser", {p: PARAMS[p] for p in tpl.params})
    doc = plan_mod.new(title="Ship the parser", template=name, owner="devpulse", created_by="human",
                       living=bool(tpl.doc.get("living")), phases=phases)
    assert all("{" not in p["task"] and "{" not in p["owner"] for p in doc["phases"])
    assert plan_mod.ready(doc), "a plan with nothing ready could never start"
    rendered = plan_mod.render(doc)
    assert all(f"**{p['name']}**" in rendered for p in doc["phases"])


def test_a_plan_is_an_event_ref_and_ready_follows_the_graph(mail_repo: Path, cli):
    made = cli("plan", "new", "Ship the parser", "-t", "build-multi", "--set", "designer=@api", "--set", "builder=api",
               "--set", "second=docs", "--set", "reviewer=quality", "--no-start", "--json", cwd=mail_repo)
    assert made.code == 0, made.err
    doc = json.loads(made.out)["plan"]
    ref = f"refs/aipass/plans/{doc['id']}"
    assert git(mail_repo, "log", "--format=%(trailers:key=Aipass-Event,valueonly)", ref) == "created"
    assert "Good \"git\" signature" in git(mail_repo, "log", "--show-signature", "-1", ref)
    assert "- [ ] **design** @api" in git(mail_repo, "show", f"{ref}:plan.md")
    ready = json.loads(cli("plan", "ready", "--json", cwd=mail_repo).out)["ready"]
    assert [(r["phase"], r["owner"]) for r in ready] == [("design", "api")]
    shown = json.loads(cli("plan", "show", doc["id"][:8], "--json", cwd=mail_repo).out)
    assert shown["ready"] == ["design"] and [p["depends_on"] for p in shown["plan"]["phases"]][-1] == ["build-a", "build-b"]
    assert cli("plan", "note", doc["id"][:8], "design starts Monday", cwd=mail_repo).code == 0
    assert "design starts Monday" in cli("plan", "show", doc["id"][:8], "--md", cwd=mail_repo).out
    assert [e["subject"].split(": ", 1)[0] for e in json.loads(cli("plan", "log", doc["id"], "--json", cwd=mail_repo).out)["events"]] == ["plan", "plan"]
    listed = cli("plan", "list", cwd=mail_repo)
    assert doc["id"][:12] in listed.out and "0/4" in listed.out
    assert cli("audit", "--only", "refs.", cwd=mail_repo).code == 0


def test_bad_plans_are_refused_with_what_to_fix(mail_repo: Path, cli):
    missing = cli("plan", "new", "X", "-t", "build", cwd=mail_repo)
    assert missing.code == 2 and "needs --set agent=" in missing.err
    unknown = cli("plan", "new", "X", "-t", "build", "--set", "agent=api", "--set", "colour=red", cwd=mail_repo)
    assert unknown.code == 2 and "has no such parameter" in unknown.err
    nobody = cli("plan", "new", "X", "-t", "build", "--set", "agent=ghost", cwd=mail_repo)
    assert nobody.code == 2 and "ghost" in nobody.err
    no_template = cli("plan", "new", "X", "-t", "nope", cwd=mail_repo)
    assert no_template.code == 2 and "build-multi" in no_template.err
    folder = mail_repo / ".aipass/plan-templates"
    folder.mkdir()
    (folder / "loop.yaml").write_text(
        'description: "a loop"\nphases:\n'
        '  - {name: a, owner: api, task: "a", depends_on: [c]}\n'
        '  - {name: b, owner: api, task: "b", depends_on: [a]}\n'
        '  - {name: c, owner: api, task: "c", depends_on: [b]}\n')
    loop = cli("plan", "new", "X", "-t", "loop", cwd=mail_repo)
    assert loop.code == 2 and "in a circle: a -> c -> b -> a" in loop.err
    assert git(mail_repo, "for-each-ref", "refs/aipass/plans/") == ""


def test_plans_travel_with_sync_and_notes_from_both_clones_merge(mail_repo: Path, cli, tmp_path: Path):
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    git(mail_repo, "remote", "add", "origin", remote.as_uri())
    git(mail_repo, "push", "-q", "origin", "HEAD:main")
    doc = json.loads(cli("plan", "new", "Research caching", "-t", "research", "--set", "agent=api", "--no-start",
                         "--json", cwd=mail_repo).out)["plan"]
    assert main_in(mail_repo, "sync") == 0
    b = tmp_path / "b"
    assert cli("clone", "--no-hooks", remote.as_uri(), str(b), cwd=tmp_path).code == 0
    git(b, "push", "-q", "origin", "HEAD:main")  # b's signing key, for a to trust
    git(mail_repo, "pull", "-q", "--ff-only", "origin", "main")
    assert cli("plan", "note", doc["id"], "from a", cwd=mail_repo).code == 0
    assert cli("plan", "note", doc["id"], "from b", cwd=b).code == 0
    assert main_in(b, "sync") == 0
    synced = json.loads(cli("sync", "--json", cwd=mail_repo).out)
    assert list(synced["merged"]) == [f"refs/aipass/plans/{doc['id']}"]
    assert main_in(b, "sync") == 0
    for where in (mail_repo, b):
        notes = json.loads(cli("plan", "show", doc["id"], "--json", cwd=where).out)["plan"]["notes"]
        assert sorted(n["text"] for n in notes) == ["from a", "from b"]


FLOW = """description: "design, two builds at once (each merged by the queue), review"
phases:
  - {name: design, owner: api, task: "Design {title}", done_when: reply}
  - {name: build-a, owner: docs, task: "Build part a", depends_on: [design], done_when: pr-merged}
  - {name: build-b, owner: quality, task: "Build part b", depends_on: [design], done_when: pr-merged}
  - {name: review, owner: api, task: "Review {title}", depends_on: [build-a, build-b], done_when: reply}
"""


def plan_doc(cli, repo: Path, plan_id: str) -> dict:
    return json.loads(cli("plan", "show", plan_id, "--json", cwd=repo).out)["plan"]


def test_a_plan_runs_to_the_end_with_no_command_after_plan_new(drepo: Path, fake_cli: Path, cli):  # noqa: F811
    (drepo / ".aipass/plan-templates").mkdir()
    (drepo / ".aipass/plan-templates/flow.yaml").write_text(FLOW)
    plan_runs(fake_cli, "api", "reply", "reply")
    plan_runs(fake_cli, "docs", "pr")
    plan_runs(fake_cli, "quality", "pr")
    made = json.loads(cli("plan", "new", "the parser", "-t", "flow", "--json", cwd=drepo).out)
    assert made["started"] == ["design"]
    plan_id = made["plan"]["id"]
    doc = wait_for(lambda: (d := plan_doc(cli, drepo, plan_id))["state"] == "closed" and d, "the plan to close", seconds=120)
    assert [p["state"] for p in doc["phases"]] == ["done"] * 4
    started = {p["name"]: p["started"] for p in doc["phases"]}
    finished = {p["name"]: p["finished"] for p in doc["phases"]}
    assert started["build-a"] >= finished["design"] and started["review"] >= max(finished["build-a"], finished["build-b"])
    assert sorted(c["env"]["AIPASS_AGENT"] for c in calls(fake_cli)) == ["api", "api", "docs", "quality"]
    dispatches = {p["dispatch"] for p in doc["phases"]}
    assert {c["env"]["AIPASS_DISPATCH"] for c in calls(fake_cli)} == dispatches
    prs = json.loads(cli("pr", "list", "--state", "all", "--json", cwd=drepo).out)["prs"]
    assert sorted((p["agent"], p["state"]) for p in prs) == [("docs", "merged"), ("quality", "merged")]
    assert {"fake-work-docs.txt", "fake-work-quality.txt"} <= set(git(drepo, "ls-tree", "--name-only", "main").split())
    assert git(drepo, "log", "--merges", "--format=%an", "main").split() == ["devpulse", "devpulse"]  # the orchestrator merged


def test_a_failing_phase_blocks_the_plan_and_tells_its_owner(drepo: Path, fake_cli: Path, cli):  # noqa: F811
    plan_runs(fake_cli, "api", *["crash"] * 10)
    made = json.loads(cli("plan", "new", "the parser", "-t", "build", "--set", "agent=api", "--json", cwd=drepo).out)
    plan_id = made["plan"]["id"]
    doc = wait_for(lambda: (d := plan_doc(cli, drepo, plan_id))["state"] == "blocked" and d, "the plan to block", seconds=120)
    assert doc["phases"][0]["state"] == "failed" and "bounced" in doc["notes"][-1]["text"]
    # the block is recorded first and the owner told after it, so the mail may trail the state
    def told():
        inbox = json.loads(cli("inbox", "@devpulse", "--json", cwd=drepo).out)["messages"]
        return [m for m in inbox if m["subject"].startswith(f"plan {plan_id[:12]} blocked")]
    assert len(wait_for(told, "the plan's owner to be told", seconds=60)) == 1
    # the fault is mended: the phase runs again, as its second attempt, and the plan goes on
    plan_runs(fake_cli, "api", "pr")
    refused = cli("plan", "retry", plan_id, "build", cwd=drepo, env={"AIPASS_AGENT": "docs"})
    assert refused.code == 2 and "may not retry" in refused.err
    retried = cli("plan", "retry", plan_id, "build", cwd=drepo)
    assert retried.code == 0 and "started: build" in retried.out
    doc = wait_for(lambda: (d := plan_doc(cli, drepo, plan_id))["state"] == "closed" and d, "the retried plan to close", seconds=120)
    assert doc["phases"][0]["attempt"] == 2 and doc["phases"][0]["state"] == "done"
    assert cli("plan", "retry", plan_id, "build", cwd=drepo).code == 2  # done: nothing to retry


def test_only_the_human_or_the_orchestrator_ends_a_plan(mail_repo: Path, cli):
    made = json.loads(cli("plan", "new", "research it", "-t", "research", "--set", "agent=api", "--no-start", "--json",
                          cwd=mail_repo).out)["plan"]
    for verb in ("close", "cancel"):
        refused = cli("plan", verb, made["id"], cwd=mail_repo, env={"AIPASS_AGENT": "api"})
        assert refused.code == 2 and f"@api may not {verb} a plan" in refused.err
    assert cli("plan", "cancel", made["id"], cwd=mail_repo, env={"AIPASS_AGENT": "devpulse"}).code == 0
    assert plan_doc(cli, mail_repo, made["id"])["state"] == "cancelled"


def test_two_racing_starts_start_a_phase_once(mail_repo: Path, cli):
    # a phase of the human's: starting it sends mail and wakes nobody
    folder = mail_repo / ".aipass/plan-templates"
    folder.mkdir()
    (folder / "ask.yaml").write_text('description: "ask the human"\nphases:\n'
                                     '  - {name: decide, owner: human, task: "decide {title}", done_when: approve}\n')
    made = json.loads(cli("plan", "new", "the name", "-t", "ask", "--no-start", "--json", cwd=mail_repo).out)["plan"]
    racers = [subprocess.Popen([sys.executable, "-m", "aipass_git", "plan", "start", made["id"], "--json"], cwd=mail_repo,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [json.loads(p.communicate(timeout=120)[0])["started"] for p in racers]
    assert sorted(outs) == [[], ["decide"]]
    ref = f"refs/aipass/plans/{made['id']}"
    events = git(mail_repo, "log", "--format=%(trailers:key=Aipass-Event,valueonly)", ref).split()
    assert events.count("phase-started") == 1
    asked = [m for m in json.loads(cli("inbox", "--json", cwd=mail_repo).out)["messages"] if made["id"][:12] in m["subject"]]
    assert len(asked) == 1
    assert cli("plan", "done", made["id"], "decide", cwd=mail_repo, env={"AIPASS_AGENT": "api"}).code == 2
    approved = cli("plan", "approve", made["id"], "decide", cwd=mail_repo)
    assert approved.code == 0, approved.err
    assert plan_doc(cli, mail_repo, made["id"])["state"] == "closed"


def test_a_build_phase_whose_pr_cannot_merge_yet_waits_for_the_merge(drepo: Path, fake_cli: Path, cli):  # noqa: F811
    plan_runs(fake_cli, "api", "pr")
    (drepo / "README.md").write_text("edited, not committed\n")  # the queue does not merge into a dirty worktree
    made = json.loads(cli("plan", "new", "the parser", "-t", "build", "--set", "agent=api", "--json", cwd=drepo).out)
    plan_id = made["plan"]["id"]
    wait_for(lambda: any(e.get("event") == "plan-merge-waits" for e in events(drepo)), "the merge to be put off")
    doc = plan_doc(cli, drepo, plan_id)
    assert doc["phases"][0]["state"] == "running"
    [pr] = json.loads(cli("pr", "list", "--json", cwd=drepo).out)["prs"]
    assert pr["dispatch"] == doc["phases"][0]["dispatch"]
    git(drepo, "checkout", "--", "README.md")
    assert cli("pr", "merge", pr["id"], cwd=drepo).code == 0
    doc = wait_for(lambda: (d := plan_doc(cli, drepo, plan_id))["state"] == "closed" and d, "the plan to close")
    assert doc["phases"][0]["state"] == "done"


def test_a_build_phase_whose_run_opened_no_pr_fails(drepo: Path, fake_cli: Path, cli):  # noqa: F811
    plan_runs(fake_cli, "api", "commit")
    made = json.loads(cli("plan", "new", "the parser", "-t", "build", "--set", "agent=api", "--json", cwd=drepo).out)
    doc = wait_for(lambda: (d := plan_doc(cli, drepo, made["plan"]["id"]))["state"] != "open" and d, "the plan to end")
    assert doc["state"] == "blocked" and "ended without opening a PR" in doc["notes"][-1]["text"]


def test_doctor_names_plans_that_cannot_go_on(mail_repo: Path, cli):
    made = json.loads(cli("plan", "new", "research it", "-t", "research", "--set", "agent=docs", "--no-start", "--json",
                          cwd=mail_repo).out)["plan"]
    checks = {c["name"]: c for c in json.loads(cli("doctor", "--json", cwd=mail_repo).out)["checks"]}
    assert checks["plans"]["status"] == "ok" and "1 plan" in checks["plans"]["detail"]
    assert cli("agent", "retire", "docs", cwd=mail_repo).code == 0
    checks = {c["name"]: c for c in json.loads(cli("doctor", "--json", cwd=mail_repo).out)["checks"]}
    assert checks["plans"]["status"] == "warn"
    assert f"{made['id'][:12]}/research waits for retired @docs" in checks["plans"]["detail"]


def project_template(repo: Path, name: str, text: str) -> None:
    folder = repo / ".aipass/plan-templates"
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.yaml").write_text(text)


def test_an_audit_clean_phase_ends_by_the_audit_of_its_owners_desk(drepo: Path, fake_cli: Path, cli):  # noqa: F811
    project_template(drepo, "checked", 'description: "build, checked by the audit"\nphases:\n'
                                       '  - {name: build, owner: api, task: "build {title}", done_when: audit-clean}\n')
    plan_runs(fake_cli, "api", "commit", "leak")
    clean = json.loads(cli("plan", "new", "the parser", "-t", "checked", "--json", cwd=drepo).out)["plan"]
    doc = wait_for(lambda: (d := plan_doc(cli, drepo, clean["id"]))["state"] != "open" and d, "the first plan to end")
    assert doc["state"] == "closed" and doc["phases"][0]["state"] == "done"
    leaky = json.loads(cli("plan", "new", "the lexer", "-t", "checked", "--json", cwd=drepo).out)["plan"]
    doc = wait_for(lambda: (d := plan_doc(cli, drepo, leaky["id"]))["state"] != "open" and d, "the second plan to end")
    assert doc["state"] == "blocked" and doc["phases"][0]["state"] == "failed"
    assert "the audit of aipass/api found" in doc["notes"][-1]["text"] and "leaked.txt" in doc["notes"][-1]["text"]


def test_a_phase_past_its_timeout_fails_and_blocks_its_plan(mail_repo: Path, cli):
    project_template(mail_repo, "timed", 'description: "an answer within the hour"\nphases:\n'
                                         '  - {name: answer, owner: human, task: "answer {title}", timeout_minutes: 60}\n')
    made = json.loads(cli("plan", "new", "the question", "-t", "timed", "--json", cwd=mail_repo).out)["plan"]
    assert json.loads(cli("plan", "advance", "--json", cwd=mail_repo).out)["plans"][made["id"]]["failed"] == []

    def two_hours_ago(doc):  # the phase started long ago: what a clock two hours on would see
        doc["phases"][0]["started"] = "2000-01-01T00:00:00Z"
        return True
    repo = discover(mail_repo)
    with EventStore(repo) as store:
        store.append(plan_mod.ref_for(made["id"]), plan_mod._change(made["id"], "note", "clock", Session.open(repo).speaker.author,
                                                                     two_hours_ago))
    moved = json.loads(cli("plan", "advance", "--json", cwd=mail_repo).out)["plans"][made["id"]]
    assert moved["failed"] == ["answer"]
    doc = plan_doc(cli, mail_repo, made["id"])
    assert doc["state"] == "blocked" and "ran past its timeout of 60 min" in doc["notes"][-1]["text"]
    told = json.loads(cli("inbox", "@devpulse", "--json", cwd=mail_repo).out)["messages"]
    assert [m["subject"] for m in told if "blocked" in m["subject"]] == [f"plan {made['id'][:12]} blocked: phase answer failed"]
    assert made["id"] not in json.loads(cli("plan", "advance", "--json", cwd=mail_repo).out)["plans"]  # blocked: left alone


def test_a_closed_plan_is_remembered_once_by_the_orchestrator(mail_repo: Path, cli):
    project_template(mail_repo, "ask", 'description: "ask the human"\nphases:\n'
                                       '  - {name: decide, owner: human, task: "decide {title}", done_when: approve}\n')
    made = json.loads(cli("plan", "new", "the colour of the bikeshed", "-t", "ask", "--json", cwd=mail_repo).out)["plan"]
    status = json.loads(cli("status", "--json", cwd=mail_repo).out)["plans"]
    assert [(p["id"], p["running"], p["done"]) for p in status] == [(made["id"], ["decide"], 0)]
    assert "bikeshed" in cli("status", cwd=mail_repo).out
    assert cli("plan", "approve", made["id"], "decide", cwd=mail_repo).code == 0
    doc = plan_doc(cli, mail_repo, made["id"])
    assert doc["state"] == "closed" and doc["remembered"] == git(mail_repo, "rev-parse", "HEAD")
    assert json.loads(cli("status", "--json", cwd=mail_repo).out)["plans"] == []
    archives = list((mail_repo / ".aipass/agents/devpulse/archive").glob("*.jsonl"))
    records = [json.loads(line) for a in archives for line in a.read_text().splitlines()]
    assert [r["section"] for r in records] == ["plans"]
    assert "the colour of the bikeshed" in records[0]["entry"]["text"] and "decide @human: done" in records[0]["entry"]["text"]
    assert cli("plan", "advance", made["id"], cwd=mail_repo).code == 0
    assert cli("plan", "advance", cwd=mail_repo).code == 0
    assert len([line for a in archives for line in a.read_text().splitlines()]) == 1  # once, however often it is seen
    found = json.loads(cli("memory", "search", "bikeshed colour plan", "--json", cwd=mail_repo).out)
    assert any(h["section"] == "plans" and made["id"][:12] in h["text"] for h in found["hits"])
    assert cli("audit", "--only", "plans.", cwd=mail_repo).code == 0


def test_a_plan_made_in_one_clone_advances_in_another_after_sync(mail_repo: Path, cli, tmp_path: Path):
    project_template(mail_repo, "ask", 'description: "ask, then decide"\nphases:\n'
                                       '  - {name: ask, owner: human, task: "ask about {title}", done_when: approve}\n'
                                       '  - {name: decide, owner: human, task: "decide {title}", depends_on: [ask], done_when: approve}\n')
    git(mail_repo, "add", ".aipass/plan-templates")
    git(mail_repo, "commit", "-qm", "a plan template")
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    git(mail_repo, "remote", "add", "origin", remote.as_uri())
    git(mail_repo, "push", "-q", "origin", "HEAD:main")
    made = json.loads(cli("plan", "new", "the release date", "-t", "ask", "--json", cwd=mail_repo).out)["plan"]
    assert main_in(mail_repo, "sync") == 0
    b = tmp_path / "b"
    assert cli("clone", "--no-hooks", remote.as_uri(), str(b), cwd=tmp_path).code == 0
    git(b, "push", "-q", "origin", "HEAD:main")  # b's signing key, for a to trust
    git(mail_repo, "pull", "-q", "--ff-only", "origin", "main")
    assert [p["state"] for p in plan_doc(cli, b, made["id"])["phases"]] == ["running", "waiting"]
    approved = cli("plan", "approve", made["id"], "ask", cwd=b)
    assert approved.code == 0 and "started: decide" in approved.out
    assert main_in(b, "sync") == 0 and main_in(mail_repo, "sync") == 0
    assert [p["state"] for p in plan_doc(cli, mail_repo, made["id"])["phases"]] == ["done", "running"]
    assert cli("plan", "approve", made["id"], "decide", cwd=mail_repo).code == 0
    assert main_in(mail_repo, "sync") == 0 and main_in(b, "sync") == 0
    for where in (mail_repo, b):
        assert plan_doc(cli, where, made["id"])["state"] == "closed"
    starts = git(b, "log", "--format=%(trailers:key=Aipass-Event,valueonly)", f"refs/aipass/plans/{made['id']}").split()
    assert starts.count("phase-started") == 2  # each phase started once, in one clone or the other
