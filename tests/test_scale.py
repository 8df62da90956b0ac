"""At scale: many agents in one commit, and the derived mail index that questions across
mailboxes read (rebuilt from git when lost or broken, never the source of truth)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import git

from aipass_git.core.repo import discover
from aipass_git.mail.summary_index import SummaryIndex
from aipass_git.store.events import EventStore


def test_many_agents_come_in_one_commit_all_or_none(mail_repo: Path, cli, tmp_path: Path):
    before = int(git(mail_repo, "rev-list", "--count", "HEAD"))
    listing = tmp_path / "agents.yaml"
    listing.write_text("".join(f"- {{name: w{i:03d}, role: worker {i}, owns: ['work/{i}/**']}}\n" for i in range(40)))
    made = cli("agent", "new", "--from", str(listing), "--json", cwd=mail_repo)
    assert made.code == 0, made.err
    assert len(json.loads(made.out)["agents"]) == 40
    assert int(git(mail_repo, "rev-list", "--count", "HEAD")) == before + 1
    signers = (mail_repo / ".aipass/allowed_signers").read_text()
    assert all(f"w{i:03d}@aipass.invalid" in signers for i in range(40))
    assert cli("audit", "--only", "aipass.", cwd=mail_repo).code == 0
    assert cli("send", "@w039", "hello", "first words", cwd=mail_repo).code == 0

    for bad, why in (
        ("- {name: x1, role: a}\n- {name: x1, role: b}\n", "given twice"),
        ("- {name: x2, role: a, owns: ['lib/**']}\n- {name: x3, role: b, owns: ['lib/**']}\n", "same batch"),
        ("- {name: x4, role: a, colour: red}\n", "unknown key 'colour'"),
        ("- {name: w001, role: again}\n", "already exists"),
        ("name: x5\n", "not a list"),
    ):
        listing.write_text(bad)
        refused = cli("agent", "new", "--from", str(listing), cwd=mail_repo)
        assert refused.code == 2 and why in refused.err, refused.err
    assert int(git(mail_repo, "rev-list", "--count", "HEAD")) == before + 1
    assert not any((mail_repo / f".aipass/agents/{n}").exists() for n in ("x1", "x2", "x3", "x4", "x5"))


def test_the_mail_index_follows_the_refs_and_is_rebuilt_when_lost_or_broken(mail_repo: Path, cli):
    assert cli("send", "@api", "@docs", "the plan", "both of you", cwd=mail_repo).code == 0
    [first] = json.loads(cli("inbox", "@api", "--json", cwd=mail_repo).out)["messages"]
    reply = cli("reply", first["id"], "agreed", cwd=mail_repo, env={"AIPASS_AGENT": "api"})
    assert reply.code == 0, reply.err
    status = json.loads(cli("status", "--json", cwd=mail_repo).out)
    thread = json.loads(cli("thread", first["id"], "--json", cwd=mail_repo).out)["messages"]
    assert [m["to"] for m in thread] == ["api", "human"]
    repo = discover(mail_repo)
    path = repo.runtime_dir / "index" / "mail.sqlite"
    assert path.exists()
    for damage in ("delete", "garbage"):
        for suffix in ("", "-wal", "-shm"):
            path.with_name(path.name + suffix).unlink(missing_ok=True)
        if damage == "garbage":
            path.write_bytes(b"this is not a database" * 100)
        assert json.loads(cli("thread", first["id"], "--json", cwd=mail_repo).out)["messages"] == thread
        assert json.loads(cli("status", "--json", cwd=mail_repo).out)["agents"] == status["agents"]
    # a mailbox that moved is re-read; the others are not
    assert cli("send", "@docs", "one more", "for you", cwd=mail_repo).code == 0
    with EventStore(repo) as store, SummaryIndex(store) as index:
        assert index.refresh() == 1
        assert index.refresh() == 0
        [(owner, line)] = index.with_prefix(first["id"])
        assert owner == "api" and line["status"] == "done"  # the reply marked it done
    rebuilt = json.loads(cli("reindex", "--json", cwd=mail_repo).out)
    assert rebuilt["mailboxes"] == 3  # api, docs, human


def test_the_mail_index_kept_folder_by_folder_equals_one_rebuilt(mail_repo: Path, cli):
    from aipass_git.mail import mailbox
    from aipass_git.store.events import Event
    from aipass_git.store.objects import Ident

    def rows(index: SummaryIndex) -> list:
        return sorted(index.db.execute("SELECT owner, id, thread, kind, status, line FROM lines"))

    for i in range(6):
        assert cli("send", "@api", "@docs", f"note {i}", "body", cwd=mail_repo).code == 0
    repo = discover(mail_repo)
    with EventStore(repo) as store, SummaryIndex(store) as index:
        assert index.refresh() >= 2  # indexed here; from now on only changed folders are read
    inbox = json.loads(cli("inbox", "@api", "--json", cwd=mail_repo).out)["messages"]
    assert cli("read", inbox[0]["id"], cwd=mail_repo, env={"AIPASS_AGENT": "api"}).code == 0
    assert cli("reply", inbox[1]["id"], "seen", cwd=mail_repo, env={"AIPASS_AGENT": "api"}).code == 0
    gone = inbox[2]["id"]
    with EventStore(repo) as store:  # a message taken out (file and its folder's index), as a rewrite would
        def take_out(view):
            view.delete(mailbox.message_path(gone))
            view.delete(mailbox.index_path(gone))
            return Event("tamper", "tamper", Ident("Test Human", "human@example.invalid"))

        store.append(mailbox.ref_for("api"), take_out)
    with EventStore(repo) as store, SummaryIndex(store) as index:
        assert index.refresh() == 2  # api (read, replied, one taken out) and human (the reply)
        kept = rows(index)
        assert not [r for r in kept if r[0] == "api" and r[1] == gone]
        assert [json.loads(r[5])["status"] for r in kept if r[0] == "api" and r[1] == inbox[0]["id"]] == ["read"]
        index.rebuild()
        assert rows(index) == kept


def test_packs_that_pile_up_are_repacked_in_the_background(mail_repo: Path, cli):
    from dispatching import wait_for

    from aipass_git.store import housekeeping

    for i in range(12):  # twelve small packs, as twelve bulk sends leave
        (mail_repo / f"note{i}.txt").write_text(f"note {i}\n")
        git(mail_repo, "add", f"note{i}.txt")
        git(mail_repo, "commit", "-qm", f"note {i}")
        git(mail_repo, "repack", "-q")
    repo = discover(mail_repo)
    assert housekeeping.counts(repo)[0] >= 12
    checks = {c["name"]: c for c in json.loads(cli("doctor", "--json", cwd=mail_repo).out)["checks"]}
    assert checks["housekeeping"]["status"] == "warn" and "packs" in checks["housekeeping"]["detail"]
    assert cli("send", "@api", "a note", "any write notices", cwd=mail_repo).code == 0
    wait_for(lambda: housekeeping.overdue(repo) is None, "the background repack", 60)
    assert git(mail_repo, "fsck", "--no-progress", "--connectivity-only") == ""
    assert cli("inbox", "@api", cwd=mail_repo).code == 0


@pytest.mark.parametrize("kicked", [True, False])
def test_housekeeping_rolls_up_the_packs_written_while_it_repacked(mail_repo: Path, monkeypatch, kicked):
    from aipass_git.core import git as git_mod
    from aipass_git.store import housekeeping

    def more_packs(n: int, start: int) -> None:
        for i in range(start, start + n):  # as bulk sends leave them: one pack each
            (mail_repo / f"note{i}.txt").write_text(f"note {i}\n")
            git(mail_repo, "add", f"note{i}.txt")
            git(mail_repo, "commit", "-qm", f"note {i}")
            git(mail_repo, "repack", "-q")

    more_packs(12, 0)
    repo = discover(mail_repo)
    real, repacks = git_mod.run, []

    def run(args, *rest, **kw):
        out = real(args, *rest, **kw)
        if args[0] == "repack":
            repacks.append(args[-1])
            if len(repacks) == 1:
                more_packs(12, 100)  # written during the first repack
                if kicked:
                    housekeeping.kick(repo)  # what each write does: it finds this one running
        return out

    monkeypatch.setattr(git_mod, "run", run)
    assert housekeeping.run(repo)["done"]
    assert housekeeping.overdue(repo) is None and not housekeeping.again_marker(repo).exists()
    # told of the writes, it goes round again; not told, what is left is one pack's worth
    assert repacks == (["--geometric=2", "--geometric=2"] if kicked else ["--geometric=2", "-a"])
