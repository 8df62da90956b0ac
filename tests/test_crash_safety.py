"""Crash safety: every write path killed at each of its named fault points (AIPASS_FAULT),
the process alone or its whole group, git children included. After each kill:

- `git fsck --full --strict` is clean and every ref is valid;
- the next command succeeds without help (no stale lock, journal or half-state blocks it);
- nothing acknowledged is lost, and nothing is delivered twice.

The kills are deterministic: a point is a place in the code, not a moment in time, and a
test asserts the process really died there (exit -9).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import BIN_DIR, git, make_desk

from aipass_git.core.repo import discover
from aipass_git.setup import leftovers


def aipass(repo: Path, *args: str, fault: str | None = None, env: dict[str, str] | None = None,
           input: str | None = None) -> subprocess.CompletedProcess:
    """`git-aipass ARGS` as its own process group (a group kill must not reach pytest); run
    directly rather than through git, so that a kill shows as exit -9."""
    full = {**os.environ, "PATH": f"{BIN_DIR}{os.pathsep}{os.environ['PATH']}", **(env or {})}
    full.pop("AIPASS_FAULT", None)
    if fault:
        full["AIPASS_FAULT"] = fault
    return subprocess.run([str(BIN_DIR / "git-aipass"), *args], cwd=repo, env=full, capture_output=True, text=True,
                          input=input, start_new_session=True, timeout=120)


def killed(proc: subprocess.CompletedProcess) -> None:
    """The fault point was reached: the process died by SIGKILL there."""
    assert proc.returncode == -9, f"expected a kill at the fault point, got exit {proc.returncode}: {proc.stderr}"


def sound(repo: Path) -> None:
    """git's own check, and the refs standards of the audit."""
    fsck = subprocess.run(["git", "fsck", "--full", "--strict", "--no-dangling"], cwd=repo, capture_output=True, text=True)
    assert fsck.returncode == 0 and not fsck.stdout.strip(), fsck.stdout + fsck.stderr
    audit = aipass(repo, "audit", "--only", "refs", "--json")
    assert audit.returncode == 0, audit.stdout + audit.stderr


def no_leftovers(repo: Path) -> None:
    """Nothing a person would have to clean up (archive duplicates aside: they are data)."""
    left = [l for l in leftovers.find(discover(repo)) if l.kind != "archive-duplicate"]
    assert left == [], [l.as_dict() for l in left]


def inbox(repo: Path, owner: str) -> list[dict]:
    proc = aipass(repo, "inbox", f"@{owner}", "--all", "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["messages"]


# -- mail: one recipient ------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["event-written", "refs-locked", "refs-locked:1:group"])
def test_a_send_killed_at_each_point_blocks_nothing_and_loses_nothing(mail_repo: Path, fault: str):
    assert aipass(mail_repo, "send", "@api", "before", "acknowledged").returncode == 0
    killed(aipass(mail_repo, "send", "@api", "interrupted", "b", fault=fault))
    after = aipass(mail_repo, "send", "@api", "after", "the next command")
    assert after.returncode == 0, after.stderr
    subjects = [m["subject"] for m in inbox(mail_repo, "api")]
    assert "before" in subjects and "after" in subjects  # acknowledged sends are kept
    assert subjects.count("interrupted") <= 1
    assert len({m["id"] for m in inbox(mail_repo, "api")}) == len(subjects)
    sound(mail_repo)
    no_leftovers(mail_repo)


def test_a_lock_left_by_hand_is_cleared_by_the_next_send(mail_repo: Path):
    assert aipass(mail_repo, "send", "@quality", "first", "b").returncode == 0
    lock = Path(git(mail_repo, "rev-parse", "--git-common-dir")) / "refs/aipass/mail/quality.lock"
    if not lock.is_absolute():
        lock = mail_repo / lock
    lock.touch()  # what a kill of `git update-ref` holding the lock leaves
    result = aipass(mail_repo, "send", "@quality", "second", "b")
    assert result.returncode == 0, result.stderr
    assert not lock.exists() and [m["subject"] for m in inbox(mail_repo, "quality")] == ["second", "first"]


def test_a_lock_a_live_process_holds_is_named_not_guessed(mail_repo: Path):
    assert aipass(mail_repo, "send", "@docs", "first", "b").returncode == 0
    lock = mail_repo / ".git/refs/aipass/mail/docs.lock"
    with open(lock, "w"):  # held open, as a live git holds a lock it is writing
        result = aipass(mail_repo, "send", "@docs", "second", "b")
    assert result.returncode == 1 and "a ref is locked:" in result.stderr and "open in pid" in result.stderr
    assert "kept changing" not in result.stderr and "hint:" in result.stderr
    lock.unlink()
    assert aipass(mail_repo, "send", "@docs", "second", "b").returncode == 0


# -- mail: a broadcast --------------------------------------------------------------------


def many_agents(repo: Path, count: int = 10) -> list[str]:
    from aipass_git.agents.registry import Registry

    registry = Registry(discover(repo))
    names = [f"m{i:02d}" for i in range(count)]
    for name in names:
        registry.create(name, role="listens", provider="command")
    return names


def without_signing(repo: Path) -> None:
    """The repository as one from before signed events (`trust: any`, no keys): bulk
    sends then stream through git fast-import, whose fault points these tests reach."""
    config = repo / ".aipass/config.yaml"
    config.write_text(config.read_text().replace("trust: signed", "trust: any"))
    git(repo, "config", "--unset", "aipass.keyring")


BATCH_FAULTS = ["batch-journalled", "refs-locked", "refs-locked:1:group", "batch-applied"]


# signed batches are packed in-process ("batch-packed"); the fast-import stream of an
# unsigned repository has "batch-imported"
@pytest.mark.parametrize("fault, signed", [(f, True) for f in ["batch-packed", *BATCH_FAULTS]]
                         + [(f, False) for f in ["batch-imported", *BATCH_FAULTS]])
def test_a_broadcast_is_delivered_to_all_or_none(mail_repo: Path, fault: str, signed: bool):
    everyone = ["api", "docs", "quality", "devpulse", *many_agents(mail_repo)]
    if not signed:
        without_signing(mail_repo)
    killed(aipass(mail_repo, "send", "@all", "to everyone", "b", fault=fault))
    # the next write of any kind first finishes or undoes what the broadcast left
    assert aipass(mail_repo, "send", "@api", "next", "b").returncode == 0
    counts = {name: [m["subject"] for m in inbox(mail_repo, name)].count("to everyone") for name in everyone}
    assert set(counts.values()) in ({0}, {1}), counts  # all or none, never twice
    if fault in ("batch-journalled", "refs-locked", "refs-locked:1:group", "batch-applied"):
        assert set(counts.values()) == {1}  # its objects were written: rolled forward
    assert git(mail_repo, "for-each-ref", "refs/aipass-import/") == ""
    sound(mail_repo)
    no_leftovers(mail_repo)
    again = aipass(mail_repo, "send", "@all", "once more", "b")
    assert again.returncode == 0, again.stderr


@pytest.mark.parametrize("fault", ["batch-journalled", "refs-locked:1:group", "batch-applied"])
def test_a_send_to_a_few_is_delivered_to_all_or_none_too(mail_repo: Path, fault: str):
    killed(aipass(mail_repo, "send", "@api", "@docs", "@quality", "to three", "b", fault=fault))
    assert aipass(mail_repo, "send", "@human", "next", "b").returncode == 0
    counts = {name: [m["subject"] for m in inbox(mail_repo, name)].count("to three") for name in ("api", "docs", "quality")}
    assert set(counts.values()) == {1}, counts
    sound(mail_repo)
    no_leftovers(mail_repo)


# -- memory, passports: commits on the checked-out branch --------------------------------------


def set_caps(repo: Path, entries: int) -> None:
    config = repo / ".aipass/config.yaml"
    text = config.read_text()
    start = text.index("  memory_entries_per_section: ")
    end = text.index("\n", start)
    config.write_text(text[:start] + f"  memory_entries_per_section: {entries}" + text[end:])
    git(repo, "commit", "-qam", "small caps")


@pytest.mark.parametrize("fault", ["commit-written", "branch-moved", "between-files", "files-written",
                                   "temp-written:2", "temp-written:3"])
def test_memory_add_killed_anywhere_leaves_one_consistent_commit(mail_repo: Path, fault: str):
    set_caps(mail_repo, 2)
    for text in ("one", "two"):
        assert aipass(mail_repo, "memory", "add", text, env={"AIPASS_AGENT": "api"}).returncode == 0
    head = git(mail_repo, "rev-parse", "HEAD")
    killed(aipass(mail_repo, "memory", "add", "three", env={"AIPASS_AGENT": "api"}, fault=fault))
    assert not (mail_repo / ".git/index.lock").exists()
    after = aipass(mail_repo, "memory", "add", "four", env={"AIPASS_AGENT": "api"})
    assert after.returncode == 0, after.stderr
    assert git(mail_repo, "status", "--porcelain") == ""  # work tree and index caught up
    memory = json.loads((mail_repo / ".aipass/agents/api/memory.json").read_text())
    archive = [json.loads(l)["entry"]["text"]
               for p in sorted((mail_repo / ".aipass/agents/api/archive").glob("*.jsonl"))
               for l in p.read_text().splitlines()]
    kept = [e["text"] for e in memory["learnings"]] + archive
    landed = git(mail_repo, "rev-parse", "HEAD~1") != head  # did "three" commit before the kill?
    assert sorted(kept) == sorted(["one", "two", "four"] + (["three"] if landed else []))
    assert len(archive) == len(set(archive)), "an entry was archived twice"
    sound(mail_repo)
    no_leftovers(mail_repo)


def test_a_stale_index_lock_does_not_block_the_next_commit(mail_repo: Path):
    (mail_repo / ".git/index.lock").touch()  # left by a killed `git update-index`
    result = aipass(mail_repo, "memory", "add", "still works", env={"AIPASS_AGENT": "api"})
    assert result.returncode == 0, result.stderr
    assert not (mail_repo / ".git/index.lock").exists() and git(mail_repo, "status", "--porcelain") == ""


def test_a_refused_commit_leaves_no_lock_and_no_staged_file(mail_repo: Path):
    before = git(mail_repo, "rev-parse", "HEAD")
    # a file size limit (ulimit -f) too small for the commit: git dies of SIGXFSZ
    proc = subprocess.run(["bash", "-c", "ulimit -f 1; exec git aipass memory add \"$(head -c 3000 /dev/zero | tr '\\0' x)\""],
                          cwd=mail_repo, capture_output=True, text=True,
                          env={**os.environ, "AIPASS_AGENT": "api", "PATH": f"{BIN_DIR}{os.pathsep}{os.environ['PATH']}"})
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and "hint:" in proc.stderr
    assert "Error" not in proc.stderr.split("hint:")[0]  # no Python exception names
    assert git(mail_repo, "rev-parse", "HEAD") == before and git(mail_repo, "status", "--porcelain") == ""
    for lock in ("index.lock", "HEAD.lock", "refs/heads/main.lock"):
        assert not (mail_repo / ".git" / lock).exists(), lock


# -- PR merges into a checked-out base ----------------------------------------------------


def open_pr(repo: Path, agent: str = "api") -> dict:
    desk = make_desk(repo, agent)
    (desk / "feature.txt").write_text("feature\n")
    git(desk, "add", "feature.txt")
    git(desk, "commit", "-qm", "feature")
    proc = aipass(desk, "pr", "open", "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["pr"]


@pytest.mark.parametrize("fault", ["refs-locked:2:group", "base-moved", "merge-recorded", "pr-told"])
def test_a_merge_killed_anywhere_is_finished_by_the_next_run_and_told_once(mail_repo: Path, fault: str):
    pr = open_pr(mail_repo)
    killed(aipass(mail_repo, "pr", "merge", pr["id"], fault=fault))
    rerun = aipass(mail_repo, "pr", "merge", "--all")
    assert rerun.returncode == 0, rerun.stderr
    show = json.loads(aipass(mail_repo, "pr", "show", pr["id"], "--json").stdout)["pr"]
    assert show["state"] == "merged" and show["told"] is True
    assert git(mail_repo, "rev-parse", "HEAD") == show["merge_commit"]
    assert (mail_repo / "feature.txt").read_text() == "feature\n"
    assert git(mail_repo, "status", "--porcelain") == ""  # no staged half-state
    notices = [m for m in inbox(mail_repo, "api") if m["kind"] == "pr" and m["subject"].startswith("merged:")]
    assert len(notices) == 1
    sound(mail_repo)
    no_leftovers(mail_repo)


# -- doctor --------------------------------------------------------------------------------------


def test_doctor_reports_each_leftover_and_fix_repairs_it(mail_repo: Path):
    everyone = ["api", "docs", "quality", "devpulse", *many_agents(mail_repo, 4)]
    without_signing(mail_repo)  # a scratch ref is what a killed fast-import leaves
    killed(aipass(mail_repo, "send", "@all", "to everyone", "b", fault="refs-locked:1:group"))
    (mail_repo / ".git/index.lock").touch()
    os.utime(mail_repo / ".git/index.lock", (1, 1))
    stray = mail_repo / ".git/aipass/agents/api/.state.json.999999.0a0b0c0d.aipass-tmp"
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_text("{")
    report = json.loads(aipass(mail_repo, "doctor", "--json").stdout)
    kinds = {c["name"] for c in report["checks"] if c["name"].startswith("leftover ")}
    assert {"leftover lock", "leftover journal", "leftover scratch-ref", "leftover temp-file"} <= kinds
    fixed = aipass(mail_repo, "doctor", "--fix", "--json")
    doc = json.loads(fixed.stdout)
    assert any("finished 1 interrupted bulk send" in line for line in doc["fixed"]), doc["fixed"]
    assert not any(c["name"].startswith("leftover ") for c in doc["checks"])
    counts = {n: [m["subject"] for m in inbox(mail_repo, n)].count("to everyone") for n in everyone}
    assert set(counts.values()) == {1}
    sound(mail_repo)


# -- broken git: errors in words ---------------------------------------------------------------


@pytest.fixture
def read_only_objects(mail_repo: Path):
    """The repository with its object store on a read-only file system (or not writable,
    for a user other than root); skipped where neither can be arranged."""
    objects = mail_repo / ".git/objects"
    if os.geteuid() != 0:
        subprocess.run(["chmod", "-R", "a-w", str(objects)], check=True)
        yield mail_repo
        subprocess.run(["chmod", "-R", "u+w", str(objects)], check=True)
        return
    saved = mail_repo.parent / "objects-copy"
    subprocess.run(["cp", "-a", str(objects), str(saved)], check=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(objects)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("as root, a read-only object store needs a mount, which this machine does not allow")
    try:
        subprocess.run(f"cp -a {saved}/. {objects}/ && mount -o remount,ro {objects}", shell=True, check=True)
        yield mail_repo
    finally:
        subprocess.run(["umount", str(objects)], check=False)


def test_a_read_only_object_store_gives_an_error_in_words(read_only_objects: Path):
    repo = read_only_objects
    before = git(repo, "rev-parse", "HEAD")
    for args in (["send", "@api", "subject", "body"], ["memory", "add", "a learning"]):
        proc = aipass(repo, *args, env={"AIPASS_AGENT": "docs"})
        assert proc.returncode == 1, proc.stderr
        first = proc.stderr.splitlines()[0]
        assert first.startswith("error: ") and ("read-only" in first or "permission" in first), proc.stderr
        assert "Traceback" not in proc.stderr and "Error" not in first and "hint:" in proc.stderr
    assert git(repo, "rev-parse", "HEAD") == before and git(repo, "status", "--porcelain") == ""
