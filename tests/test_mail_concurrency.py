"""Many real processes on one mailbox, and on the same messages at once (kills at named
points are in test_crash_safety.py; kills at random moments in bench/chaos.py)."""

import json
import subprocess
import sys
from pathlib import Path

from conftest import git

from aipass_git.core.repo import discover
from aipass_git.mail import mailbox, message as msg
from aipass_git.mail.postoffice import PostOffice

SENDER = """
import sys
from aipass_git.core.repo import discover
from aipass_git.mail.postoffice import PostOffice
repo, tag, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
with PostOffice(discover(repo)) as po:
    print("ready", flush=True)
    for i in range(count):
        print("sending", flush=True)
        [m] = po.send(["@api"], f"{tag}-{i}", f"body of {tag}-{i}")
        print(m["id"], flush=True)
"""

MARKER = """
import sys
from aipass_git.core.repo import discover
from aipass_git.mail.postoffice import PostOffice
repo, status, ids = sys.argv[1], sys.argv[2], sys.argv[3:]
with PostOffice(discover(repo), act_as="@api") as po:
    for mid in ids:
        po.mark([mid], status)
"""


def spawn(script: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", script, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def mailbox_state(repo: Path, owner: str = "api") -> tuple[list[dict], dict[str, dict]]:
    """Index lines and full messages of a mailbox, read independently through plain git."""
    ref = mailbox.ref_for(owner)
    entries = [line.split(None, 3) for line in git(repo, "ls-tree", "-r", ref).splitlines()]
    files = [(Path(path).stem, oid) for _, _, oid, path in entries if path.endswith(".json")]
    batch = subprocess.run(["git", "cat-file", "--batch"], cwd=repo, capture_output=True, check=True,
                           input="".join(f"{oid}\n" for _, oid in files).encode()).stdout
    bodies, pos = {}, 0
    for stem, _ in files:
        header_end = batch.index(b"\n", pos)
        size = int(batch[pos:header_end].split()[2])
        bodies[stem] = json.loads(batch[header_end + 1 : header_end + 1 + size])
        pos = header_end + 1 + size + 1
    with PostOffice(discover(repo)) as po:
        lines = mailbox.MailboxReader(po.store, owner).summaries()
    return lines, bodies


def assert_consistent(lines: list[dict], bodies: dict[str, dict]) -> None:
    assert sorted(l["id"] for l in lines) == sorted(bodies), "index and message files disagree"
    for line in lines:
        full = bodies[line["id"]]
        assert msg.is_valid(full)
        assert full["body"] == f"body of {full['subject']}"
        assert {k: full[k] for k in msg.SUMMARY_FIELDS} == {k: line[k] for k in msg.SUMMARY_FIELDS}


def assert_fsck_clean(repo: Path) -> None:
    proc = subprocess.run(["git", "fsck", "--strict", "--no-dangling"], cwd=repo, capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == "", proc.stdout + proc.stderr


def test_thirty_writers_lose_nothing(mail_repo: Path):
    procs = [spawn(SENDER, str(mail_repo), f"w{w}", "50") for w in range(30)]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    lines, bodies = mailbox_state(mail_repo)
    assert len(lines) == 1500
    assert sorted(l["subject"] for l in lines) == sorted(f"w{w}-{i}" for w in range(30) for i in range(50))
    assert {l["status"] for l in lines} == {"new"}
    assert_consistent(lines, bodies)
    assert git(mail_repo, "rev-list", "--count", "refs/aipass/mail/api") == "1500"
    assert_fsck_clean(mail_repo)


def test_concurrent_status_changes_lose_no_event(mail_repo: Path):
    with PostOffice(discover(mail_repo)) as po:
        ids = [po.send(["@api"], f"m-{i}", f"body of m-{i}")[0]["id"] for i in range(60)]
    # two processes move the same messages, in opposite orders
    reader = spawn(MARKER, str(mail_repo), "read", *ids)
    closer = spawn(MARKER, str(mail_repo), "done", *reversed(ids))
    for p in (reader, closer):
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    lines, bodies = mailbox_state(mail_repo)
    assert {l["status"] for l in lines} == {"done"}
    assert_consistent(lines, bodies)
    with PostOffice(discover(mail_repo)) as po:
        history = po.log("@api")
    done_events = [h.trailers["Aipass-Message"] for h in history if h.trailers["Aipass-Event"] == "done"]
    assert sorted(done_events) == sorted(ids)
    # and two processes closing disjoint halves at once: every one of them ends done
    with PostOffice(discover(mail_repo)) as po:
        more = [po.send(["@api"], f"n-{i}", f"body of n-{i}")[0]["id"] for i in range(60)]
    evens = spawn(MARKER, str(mail_repo), "done", *more[0::2])
    odds = spawn(MARKER, str(mail_repo), "done", *more[1::2])
    for p in (evens, odds):
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    lines, _ = mailbox_state(mail_repo)
    assert {l["status"] for l in lines if l["id"] in more} == {"done"}
    assert_fsck_clean(mail_repo)
