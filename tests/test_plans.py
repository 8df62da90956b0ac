"""Plans (first slice): templates fill and validate, the phase graph refuses cycles, plans
are events on their own ref, `ready` follows the graph, and plans travel with sync."""

import json
from pathlib import Path

import pytest
from conftest import git, main_in

from aipass_git.core.repo import discover
from aipass_git.plans import plan as plan_mod, templates as templates_mod

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
               "--set", "second=docs", "--set", "reviewer=quality", "--json", cwd=mail_repo)
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
    doc = json.loads(cli("plan", "new", "Research caching", "-t", "research", "--set", "agent=api", "--json",
                         cwd=mail_repo).out)["plan"]
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
