import json
import os
from pathlib import Path

from conftest import git, run_git_aipass


def test_demo_builds_a_repository_with_three_agents(tmp_path: Path, cli, monkeypatch):
    monkeypatch.setenv("IS_SANDBOX", "1")  # as root, the orchestrator's Claude provider needs it
    target = tmp_path / "demo"
    result = cli("demo", "--dir", str(target), cwd=tmp_path)
    assert result.code == 0, result.err
    assert f"demo repository: {target}" in result.out
    agents = json.loads(cli("agent", "list", "--json", cwd=target).out)["agents"]
    assert [a["name"] for a in agents] == ["api", "devpulse", "docs", "quality"]
    assert git(target, "status", "--porcelain") == ""
    log = git(target, "log", "--first-parent", "--format=%s").splitlines()  # main's own line
    assert log[0].startswith("Merge PR ") and log[0].endswith(": document the price format")
    assert log[1:] == [
        "aipass: add agent quality", "aipass: add agent docs", "aipass: add agent api",
        "aipass: demo agents run the built-in local agent", "aipass: set up aipass-git", "shop: first version",
    ]
    assert cli("doctor", cwd=target).code == 0
    human_inbox = json.loads(cli("inbox", "--json", cwd=target).out)["messages"]
    assert [(m["from"], m["kind"]) for m in human_inbox] == [("docs", "reply"), ("api", "reply")]
    # the dispatch really ran the local agent on @docs's desk: a commit with a note and a learning
    merged = git(target, "log", "-1", "--format=%H", "main")
    files = git(target, "diff", "--name-only", f"{merged}^1", merged).splitlines()
    assert ".aipass/agents/docs/memory.json" in files and any(f.startswith("notes/docs/") for f in files)
    desk_memory = json.loads(git(target, "show", "main:.aipass/agents/docs/memory.json"))  # merged into main
    assert desk_memory["learnings"] and desk_memory["sessions"]  # the agent's learning, the supervisor's session
    assert "-> ok" in desk_memory["sessions"][0]["text"]
    events = git(target, "log", "--format=%(trailers:key=Aipass-Event,valueonly,separator=)", "refs/aipass/mail/api").split()
    assert events == ["done", "read", "deliver"]


def test_demo_json_and_default_temporary_folder(tmp_path: Path, cli, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    result = cli("demo", "--json", cwd=tmp_path)
    assert result.code == 0, result.err
    doc = json.loads(result.out)
    path = Path(doc["path"])
    assert path.parent == tmp_path.resolve() and path.name.startswith("aipass-demo-")
    assert {a["name"] for a in doc["agents"]} == {"api", "devpulse", "docs", "quality"}
    assert ".aipass/config.yaml" in doc["files"]


def test_demo_refuses_a_folder_with_files(tmp_path: Path, cli):
    (tmp_path / "keep.txt").write_text("mine")
    result = cli("demo", "--dir", str(tmp_path), cwd=tmp_path)
    assert result.code == 2 and "not an empty folder" in result.err
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_demo_works_where_git_was_never_configured(tmp_path: Path):
    home = tmp_path / "home"
    home.mkdir()
    env = {"HOME": str(home), "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1", "TMPDIR": str(tmp_path)}
    result = run_git_aipass("demo", "--dir", str(tmp_path / "d"), cwd=tmp_path, env=env)
    assert result.code == 0, result.err
    assert "quality" in result.out
