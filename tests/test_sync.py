"""Sync across clones: three clones and a bare remote (over file:// and over `git daemon`
on 127.0.0.1), real processes writing at once, then every clone holds everything."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import git, main_in, wait_for_daemon

from aipass_git.core.repo import discover
from aipass_git.mail import mailbox
from aipass_git.store.events import EventStore
from aipass_git.sync import cycle

WORKER = Path(__file__).parent / "sync_worker.py"
STATUS_RANK = {"new": 0, "read": 1, "done": 2}


def bare_remote(tmp_path: Path) -> Path:
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    # the remote keeps a reflog too, so the test can see that no update was ever forced
    git(remote, "config", "core.logAllRefUpdates", "always")
    return remote


def publish(source: Path, url: str) -> None:
    git(source, "remote", "add", "origin", url)
    git(source, "push", "-q", "origin", "HEAD:main")
    assert main_in(source, "sync") == 0


def share_keys(clones: list[Path]) -> None:
    """Each new clone committed a signing key for its human: push them all (merging as
    people do: allowed_signers merges as lines), and every clone takes the result."""
    for c in clones[1:]:
        git(c, "pull", "-q", "--no-rebase", "origin", "main")
        git(c, "push", "-q", "origin", "HEAD:main")
    for c in clones:
        git(c, "pull", "-q", "--ff-only", "origin", "main")


def clone(cli, url: str, target: Path) -> Path:
    done = cli("clone", "--no-hooks", url, str(target), cwd=target.parent)
    assert done.code == 0, done.err
    return target


def state(clone: Path) -> dict[str, dict[str, str]]:
    """owner -> message id -> status, as the clone's mailboxes hold them."""
    with EventStore(discover(clone)) as store:
        return {owner: {l["id"]: l["status"] for l in mailbox.MailboxReader(store, owner).summaries()}
                for owner in ("api", "docs", "human")}


def never_forced(git_dir: Path) -> None:
    """Every reflog entry of every aipass ref moved forward (or created the ref)."""
    logs = git_dir / "logs" / "refs" / "aipass"
    assert logs.is_dir(), f"no reflogs under {logs}"
    checked = 0
    for log in logs.rglob("*"):
        if log.is_file():
            for line in log.read_text().splitlines():
                old, new = line.split()[:2]
                if set(old) != {"0"}:
                    assert subprocess.run(["git", "merge-base", "--is-ancestor", old, new], cwd=git_dir).returncode == 0, \
                        f"{log}: {old} -> {new} was forced"
                    checked += 1
    assert checked > 0


@pytest.mark.parametrize("transport", ["file", "daemon"])
def test_three_clones_writing_at_once_end_with_every_message_and_the_furthest_status(
        transport: str, mail_repo: Path, tmp_path: Path, cli, request):
    remote = bare_remote(tmp_path)
    if transport == "daemon":
        base = request.getfixturevalue("daemon")
        url = f"{base}/remote.git"
        wait_for_daemon(url)
    else:
        url = remote.as_uri()
    a = tmp_path / "a"
    shutil.move(str(mail_repo), a)
    # a little mail before the clones exist, so all three start with something to change
    assert cli("send", "@api", "before", "b", cwd=a).code == 0
    assert cli("send", "@human", "before", "b", cwd=a).code == 0
    publish(a, url)
    clones = [a, clone(cli, url, tmp_path / "b"), clone(cli, url, tmp_path / "c")]
    share_keys(clones)

    workers = [subprocess.Popen([sys.executable, str(WORKER), str(c), str(i + 1), "30", str(tmp_path / f"w{i}.json")],
                                stderr=subprocess.PIPE, text=True) for i, c in enumerate(clones)]
    for w in workers:
        _, err = w.communicate(timeout=600)
        assert w.returncode == 0, err
    for c in [*clones, *clones[:2]]:  # every clone's writes reach the others by the second pass
        assert main_in(c, "sync") == 0

    sent = [m for i in range(3) for m in json.loads((tmp_path / f"w{i}.json").read_text())["sent"]]
    marks = [m for i in range(3) for m in json.loads((tmp_path / f"w{i}.json").read_text())["marks"]]
    assert len(sent) > 20 and len(marks) > 10
    states = [state(c) for c in clones]
    assert states[0] == states[1] == states[2]
    held = {mid for box in states[0].values() for mid in box}
    assert set(sent) <= held
    furthest: dict[tuple[str, str], str] = {}
    for owner, mid, status in marks:
        if STATUS_RANK[status] > STATUS_RANK[furthest.get((owner, mid), "new")]:
            furthest[(owner, mid)] = status
    for (owner, mid), status in furthest.items():
        assert states[0][owner][mid] == status
    tips = {c: dict(line.split()[::-1] for line in git(c, "for-each-ref", "--format=%(objectname) %(refname)",
                                                          "refs/aipass/").splitlines()) for c in clones}
    assert tips[clones[0]] == tips[clones[1]] == tips[clones[2]]
    assert any(len(git(a, "rev-list", "--merges", ref).split()) > 0 for ref in tips[a])  # divergence happened
    for where in [*clones, remote]:
        git(where, "fsck", "--no-dangling")
    never_forced(remote)
    for c in clones:
        never_forced(c / ".git")
    for c in clones:
        audit = cli("audit", cwd=c)
        assert audit.code == 0, audit.out + audit.err


def test_a_fresh_clone_sees_the_mail_and_doctor_names_what_is_not_set_up(mail_repo: Path, tmp_path: Path, cli):
    remote = bare_remote(tmp_path)
    assert cli("send", "@api", "hello from a", "b", cwd=mail_repo).code == 0
    publish(mail_repo, remote.as_uri())
    b = clone(cli, remote.as_uri(), tmp_path / "b")
    inbox = json.loads(cli("inbox", "@api", "--json", cwd=b).out)["messages"]
    assert [m["subject"] for m in inbox] == ["hello from a"]
    assert git(b, "config", "--get-all", "remote.origin.fetch").splitlines()[-1] == "+refs/aipass/*:refs/aipass-sync/origin/*"
    assert git(b, "config", "core.logAllRefUpdates") == "always"
    doctor = json.loads(cli("doctor", "--json", cwd=b).out)
    assert [c["status"] for c in doctor["checks"] if c["name"] == "sync origin"] == ["ok"]

    plain = tmp_path / "plain"
    git(tmp_path, "clone", "-q", remote.as_uri(), str(plain))
    checks = {c["name"]: c for c in json.loads(cli("doctor", "--json", cwd=plain).out)["checks"]}
    assert checks["sync origin"]["status"] == "warn" and "git aipass sync origin" in checks["sync origin"]["hint"]
    # init in a plain clone sets it up as clone does: a plain fetch then brings the event refs
    done = cli("init", "--no-hooks", cwd=plain)
    assert done.code == 0, done.err
    assert git(plain, "config", "--get-all", "remote.origin.fetch").splitlines()[-1] == "+refs/aipass/*:refs/aipass-sync/origin/*"
    assert git(plain, "config", "core.logAllRefUpdates") == "always"
    git(plain, "fetch", "-q", "origin")
    assert git(plain, "rev-parse", "refs/aipass-sync/origin/mail/api") == git(remote, "rev-parse", "refs/aipass/mail/api")

    # one more message in a: b's doctor says what it has not taken in, without the network
    assert cli("send", "@api", "second", "b", cwd=mail_repo).code == 0
    assert cli("sync", cwd=mail_repo).code == 0
    git(b, "fetch", "-q", "origin")
    checks = {c["name"]: c for c in json.loads(cli("doctor", "--json", cwd=b).out)["checks"]}
    assert checks["sync origin"]["status"] == "warn" and checks["sync origin"]["detail"].endswith(": 1 event ref behind")
    assert cli("sync", cwd=b).code == 0
    assert len(json.loads(cli("inbox", "@api", "--json", cwd=b).out)["messages"]) == 2


def test_doctor_tells_unpushed_behind_and_diverged_refs_apart(mail_repo: Path, tmp_path: Path, cli):
    remote = bare_remote(tmp_path)
    for who in ("api", "docs", "human"):
        assert cli("send", f"@{who}", "before", "b", cwd=mail_repo).code == 0
    publish(mail_repo, remote.as_uri())
    b = clone(cli, remote.as_uri(), tmp_path / "b")
    for who in ("api", "human"):  # the remote moves on: api only there, human on both sides
        assert cli("send", f"@{who}", "from a", "b", cwd=mail_repo).code == 0
    assert cli("sync", cwd=mail_repo).code == 0
    for who in ("docs", "human"):
        assert cli("send", f"@{who}", "from b", "b", cwd=b).code == 0
    git(b, "fetch", "-q", "origin")
    checks = {c["name"]: c for c in json.loads(cli("doctor", "--json", cwd=b).out)["checks"]}
    assert checks["sync origin"]["detail"] == ("as last fetched from 'origin': 1 event ref unpushed; 1 event ref behind; "
                                               "1 event ref diverged (sync merges them)")
    assert checks["sync origin"]["hint"] == "run: git aipass sync origin"
    assert cli("sync", cwd=b).code == 0
    checks = {c["name"]: c for c in json.loads(cli("doctor", "--json", cwd=b).out)["checks"]}
    assert checks["sync origin"]["status"] == "ok"


def test_sync_merges_a_read_on_one_side_and_a_done_on_the_other(mail_repo: Path, tmp_path: Path, cli):
    remote = bare_remote(tmp_path)
    sent = json.loads(cli("send", "@human", "both touch this", "b", "--json", cwd=mail_repo).out)
    mid = sent["messages"][0]["id"]
    publish(mail_repo, remote.as_uri())
    b = clone(cli, remote.as_uri(), tmp_path / "b")
    assert cli("done", mid, cwd=b).code == 0
    assert cli("read", mid, cwd=mail_repo).code == 0
    assert cli("sync", cwd=b).code == 0
    out = cli("sync", "--json", cwd=mail_repo)
    report = json.loads(out.out)
    assert list(report["merged"]) == ["refs/aipass/mail/human"] and report["apart"] == {}
    assert state(mail_repo)["human"][mid] == "done"
    tip = git(mail_repo, "rev-parse", "refs/aipass/mail/human")
    assert len(git(mail_repo, "rev-list", "--parents", "-n1", tip).split()) == 3  # a merge: both histories
    assert "Aipass-Event: merge" in git(mail_repo, "log", "-1", "--format=%B", tip)


def test_sync_refuses_without_a_remote_and_says_what_failed_when_it_cannot_reach_it(mail_repo: Path, tmp_path: Path, cli):
    none = cli("sync", cwd=mail_repo)
    assert none.code == 2 and "no remote" in none.err and "git remote add" in none.err
    git(mail_repo, "remote", "add", "origin", (tmp_path / "missing.git").as_uri())
    unknown = cli("sync", "upstream", cwd=mail_repo)
    assert unknown.code == 2 and "no remote 'upstream'" in unknown.err
    gone = cli("sync", cwd=mail_repo)
    assert gone.code == 1 and "could not fetch from 'origin'" in gone.err and "hint:" in gone.err


def test_refs_of_no_kind_are_neither_pushed_nor_taken_in(mail_repo: Path, tmp_path: Path, cli):
    remote = bare_remote(tmp_path)
    assert cli("send", "@api", "hello", "b", cwd=mail_repo).code == 0
    head = git(mail_repo, "rev-parse", "HEAD")
    git(mail_repo, "update-ref", "refs/aipass/mail/Upper", head)
    git(mail_repo, "update-ref", "refs/aipass/junk/x", head)
    publish(mail_repo, remote.as_uri())
    on_remote = git(remote, "for-each-ref", "--format=%(refname)", "refs/aipass/").split()
    assert on_remote == ["refs/aipass/mail/api"]
    git(remote, "update-ref", "refs/aipass/mail/Other", head)  # a stray written on the remote
    b = clone(cli, remote.as_uri(), tmp_path / "b")
    assert git(b, "for-each-ref", "--format=%(refname)", "refs/aipass/").split() == ["refs/aipass/mail/api"]


def forge_status(repo: Path, tip: str, status: str) -> str:
    """A commit on TIP whose index lines carry STATUS, written with plain git: what anyone
    who can push to the remote can put there."""
    env = {**os.environ, "GIT_INDEX_FILE": str(repo / ".git" / "forged-index")}
    subprocess.run(["git", "read-tree", tip], cwd=repo, env=env, check=True)
    for path in git(repo, "ls-tree", "-r", "--name-only", tip).split():
        if path.endswith("index.jsonl"):
            text = re.sub(r'"status": ?"new"', f'"status":"{status}"', git(repo, "show", f"{tip}:{path}"))
            blob = subprocess.run(["git", "hash-object", "-w", "--stdin"], input=text + "\n", text=True, cwd=repo,
                                  capture_output=True, check=True).stdout.strip()
            subprocess.run(["git", "update-index", "--cacheinfo", f"100644,{blob},{path}"], cwd=repo, env=env, check=True)
    tree = subprocess.run(["git", "write-tree"], cwd=repo, env=env, capture_output=True, text=True, check=True).stdout.strip()
    return git(repo, "commit-tree", tree, "-p", tip, "-m", "forged")


def test_a_mailbox_that_does_not_read_stays_apart_and_the_others_still_sync(mail_repo: Path, tmp_path: Path, cli):
    remote = bare_remote(tmp_path)
    for who in ("api", "docs"):
        assert cli("send", f"@{who}", "before", "b", cwd=mail_repo).code == 0
    publish(mail_repo, remote.as_uri())
    b = clone(cli, remote.as_uri(), tmp_path / "b")
    forged = forge_status(b, git(b, "rev-parse", "refs/aipass/mail/api"), "bogus")
    assert '"status":"bogus"' in git(b, "show", "--no-textconv", forged)  # the forgery took
    git(b, "push", "-q", "origin", f"{forged}:refs/aipass/mail/api")
    assert cli("send", "@docs", "from b", "b", cwd=b).code == 0
    assert cli("sync", cwd=b).code == 0
    for who in ("api", "docs"):  # both diverge from the remote
        assert cli("send", f"@{who}", "from a", "b", cwd=mail_repo).code == 0
    before = git(mail_repo, "rev-parse", "refs/aipass/mail/api")
    out = cli("sync", "--json", cwd=mail_repo)
    assert out.code == 1, out.err
    report = json.loads(out.out)
    assert list(report["merged"]) == ["refs/aipass/mail/docs"] and report["went_out"] == ["refs/aipass/mail/docs"]
    assert list(report["apart"]) == ["refs/aipass/mail/api"]
    assert "could not merge: a side's mailbox state does not read (ValueError" in report["apart"]["refs/aipass/mail/api"]
    assert git(mail_repo, "rev-parse", "refs/aipass/mail/api") == before  # left as it was, nothing forced
    assert git(remote, "rev-parse", "refs/aipass/mail/api") == forged
    assert cycle.take_in(discover(mail_repo)) == []  # what a plain fetch's hook does: the same, without the network
    subjects = {m["subject"] for m in json.loads(cli("inbox", "@docs", "--json", cwd=mail_repo).out)["messages"]}
    assert subjects == {"before", "from a", "from b"}
