"""Each dispatch runs once across clones: claims pushed to the remote before a run, homes,
wakes by sync and by a plain fetch, a crash between the claim and the run, no remote."""

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import git, main_in, wait_for_daemon
from dispatching import calls, drepo, events, fake_cli, run_dispatch, wait_for  # noqa: F401 - fixtures

from aipass_git.agents import identity
from aipass_git.core.repo import discover
from aipass_git.dispatch import dispatcher
from aipass_git.mail import mailbox
from aipass_git.mail.postoffice import PostOffice
from aipass_git.store import exchange
from aipass_git.store.events import EventStore
from aipass_git.sync import cycle

CLAIMER = """
import json, sys
from aipass_git.agents import identity
from aipass_git.core.repo import discover
from aipass_git.dispatch import claim
from aipass_git.store.events import EventStore
repo = discover(sys.argv[1])
with EventStore(repo) as store:
    got = claim.take(store, "api", sys.argv[2], identity.human(repo).author)
print(json.dumps({"won": got.won, "holder": got.holder, "why": got.why}))
"""


@pytest.fixture
def pair(drepo: Path, tmp_path: Path, cli, request):
    """Clone A (the dispatch repository, clone name box-a) and clone B (box-b) of one bare
    remote, over file:// or (parametrized "daemon") over `git daemon` on 127.0.0.1."""
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    url = remote.as_uri()
    if getattr(request, "param", "file") == "daemon":
        url = f"{request.getfixturevalue('daemon')}/remote.git"
        wait_for_daemon(url)
    git(drepo, "config", "aipass.clone", "box-a")
    git(drepo, "remote", "add", "origin", url)
    git(drepo, "push", "-q", "origin", "HEAD:main")
    assert main_in(drepo, "sync") == 0
    b = tmp_path / "b"
    assert cli("clone", "--no-hooks", url, str(b), cwd=tmp_path).code == 0
    git(b, "config", "aipass.clone", "box-b")
    join(drepo, b)
    return drepo, b


def join(a: Path, other: Path) -> None:
    """What a new clone's human does: push the signing key the clone made for them (A
    takes it in), and bring api's key from A, to run api there too."""
    git(other, "push", "-q", "origin", "HEAD:main")
    git(a, "pull", "-q", "--ff-only", "origin", "main")
    with EventStore(discover(a)) as store:
        path = store.keys.path("api@aipass.invalid")
    assert main_in(other, "key", "import", "@api", str(path)) == 0


def exchange_only(repo: Path) -> None:
    """Sync without waking anyone: the refs only."""
    r = discover(repo)
    with EventStore(r) as store:
        assert exchange.exchange(store, "origin", cycle.KINDS, identity.human(r).author).apart == {}


def deliver(repo: Path, subject: str = "task") -> str:
    """A dispatch delivered as mail only (no supervisor started)."""
    with PostOffice(discover(repo)) as po:
        [task] = po.send(["@api"], subject, "please", kind="dispatch")
    return task["id"]


def home_api_at(a: Path, b: Path, clone: str) -> None:
    """Commit api's passport with a home in A, and bring it to B."""
    passport = a / ".aipass/agents/api/passport.json"
    doc = json.loads(passport.read_text())
    doc["home"] = clone
    passport.write_text(json.dumps(doc))
    git(a, "commit", "-qam", f"api runs at {clone}")
    git(a, "push", "-q", "origin", "HEAD:main")
    git(b, "pull", "-q", "--ff-only", "origin", "main")


def runs_of(record: Path, dispatch_id: str) -> int:
    return sum(1 for c in calls(record) if c["env"].get("AIPASS_DISPATCH") == dispatch_id)


def claim_in(repo: Path, dispatch_id: str) -> str | None:
    with EventStore(discover(repo)) as store:
        return (mailbox.MailboxReader(store, "api").summary(dispatch_id) or {}).get("claim")


def test_a_dispatch_run_in_one_clone_is_not_run_again_in_the_other(pair, fake_cli: Path, cli):  # noqa: F811
    a, b = pair
    sent, outcome = run_dispatch(a, "api")
    assert outcome["result"] == "ok"
    assert claim_in(a, sent.message["id"]) == "box-a"
    assert cli("sync", cwd=a).code == 0
    synced = json.loads(cli("sync", "--json", cwd=b).out)
    assert "refs/aipass/mail/api" in synced["came_in"] and synced["woken"] == []
    assert claim_in(b, sent.message["id"]) == "box-a"
    assert runs_of(fake_cli, sent.message["id"]) == 1
    assert not [e for e in events(b) if e.get("event") == "wake"]


def test_two_clones_claiming_at_once_agree_on_one_winner(pair, fake_cli: Path):  # noqa: F811
    a, b = pair
    task = deliver(a)
    exchange_only(a)
    exchange_only(b)
    procs = [subprocess.Popen([sys.executable, "-c", CLAIMER, str(c), task], stdout=subprocess.PIPE, text=True)
             for c in (a, b)]
    results = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    assert sorted(r["won"] for r in results) == [False, True], results
    winner = "box-a" if results[0]["won"] else "box-b"
    assert [r["holder"] for r in results] == [winner, winner]
    exchange_only(a)
    exchange_only(b)
    assert claim_in(a, task) == claim_in(b, task) == winner


def test_a_supervisor_killed_after_its_claim_landed_runs_it_on_restart_and_nowhere_else(
        pair, fake_cli: Path, cli, monkeypatch: pytest.MonkeyPatch):  # noqa: F811
    a, b = pair
    monkeypatch.setenv("AIPASS_FAULT", "claim-pushed")
    sent = dispatcher.dispatch(discover(a), "api", "task", "details")
    task = sent.message["id"]
    remote = Path(git(a, "remote", "get-url", "origin").removeprefix("file://"))
    wait_for(lambda: git(remote, "log", "-1", "--format=%(trailers:key=Aipass-Claim,valueonly)",
                         "refs/aipass/mail/api", "--", check=False) == "box-a", "the claim on the remote")
    assert claim_in(a, task) is None  # killed before the claim was made local
    monkeypatch.delenv("AIPASS_FAULT")
    synced = json.loads(cli("sync", "--json", cwd=b).out)
    assert synced["woken"] == [] and claim_in(b, task) == "box-a"
    [api] = [r for r in json.loads(cli("status", "--json", cwd=b).out)["agents"] if r["agent"] == "api"]
    assert api["state"] == "elsewhere" and api["elsewhere"] == [{"dispatch": task, "clone": "box-a"}]
    assert "elsewhere (box-a)" in cli("status", cwd=b).out
    outcome = dispatcher.wait(discover(a), task, timeout=60, agent="api")
    assert outcome["result"] == "ok"
    assert runs_of(fake_cli, task) == 1


def test_an_agent_homed_in_another_clone_is_delivered_here_and_run_there(pair, fake_cli: Path, cli):  # noqa: F811
    a, b = pair
    home_api_at(a, b, "box-b")
    sent = json.loads(cli("dispatch", "@api", "task", "details", "--json", cwd=a).out)
    assert sent["state"] == "delivered; runs at box-b"
    waited = cli("dispatch", "@api", "task", "details", "--wait", cwd=a)
    assert waited.code == 2 and "runs in another clone" in waited.err
    assert cli("sync", cwd=a).code == 0
    assert runs_of(fake_cli, sent["dispatch"]["id"]) == 0
    synced = json.loads(cli("sync", "--json", cwd=b).out)
    assert synced["woken"] == ["api"]
    assert dispatcher.wait(discover(b), sent["dispatch"]["id"], timeout=60, agent="api")["result"] == "ok"
    assert runs_of(fake_cli, sent["dispatch"]["id"]) == 1
    assert claim_in(b, sent["dispatch"]["id"]) == "box-b"


def test_a_plain_fetch_starts_python_only_for_a_dispatch_and_that_dispatch_runs(pair, fake_cli: Path, cli, tmp_path: Path):  # noqa: F811
    a, b = pair
    home_api_at(a, b, "box-b")
    assert cli("hooks", "install", cwd=b).code == 0
    hooks_dir = b / ".git/hooks"
    started = tmp_path / "python-started"
    text = (hooks_dir / "reference-transaction").read_text()
    call = "echo fetched | aipass hook reference-transaction fetched"
    assert call in text
    (hooks_dir / "reference-transaction").write_text(text.replace(call, f"echo started >> {started}; {call}"))

    def fetch_and_look() -> None:
        """A plain fetch; then wait for the shim's look after it (its marker goes last)."""
        git(b, "fetch", "-q", "origin")
        wait_for(lambda: not list(hooks_dir.glob("aipass-fetch-*")), "the look after the fetch")

    for n in range(3):
        assert cli("send", "@api", f"plain mail {n}", "b", cwd=a).code == 0
    assert cli("sync", cwd=a).code == 0
    fetch_and_look()
    assert not started.exists()  # mail without a dispatch: the shell said no
    assert git(b, "rev-parse", "refs/aipass-sync/origin/mail/api") == git(a, "rev-parse", "refs/aipass/mail/api")

    task = deliver(a)
    assert cli("sync", cwd=a).code == 0
    fetch_and_look()
    assert started.read_text() == "started\n"  # once for the whole fetch
    assert dispatcher.wait(discover(b), task, timeout=60, agent="api")["result"] == "ok"
    assert runs_of(fake_cli, task) == 1 and claim_in(b, task) == "box-b"


def test_without_the_remote_a_dispatch_waits_and_runs_once_it_is_back(pair, fake_cli: Path, cli, tmp_path: Path):  # noqa: F811
    a, _ = pair
    url = git(a, "remote", "get-url", "origin")
    git(a, "remote", "set-url", "origin", (tmp_path / "gone.git").as_uri())
    sent = dispatcher.dispatch(discover(a), "api", "task", "details")
    task = sent.message["id"]
    wait_for(lambda: [e for e in events(a, task) if e.get("event") == "claim-failed"], "the claim to fail")
    assert runs_of(fake_cli, task) == 0 and claim_in(a, task) is None
    git(a, "remote", "set-url", "origin", url)
    synced = json.loads(cli("sync", "--json", cwd=a).out)
    assert synced["woken"] == ["api"]
    assert dispatcher.wait(discover(a), task, timeout=60, agent="api")["result"] == "ok"
    assert runs_of(fake_cli, task) == 1


@pytest.mark.parametrize("pair", ["file", "daemon"], indirect=True)
def test_three_clones_syncing_at_once_run_a_dispatch_once(pair, fake_cli: Path, cli, tmp_path: Path):  # noqa: F811
    a, b = pair
    c = tmp_path / "c"
    assert cli("clone", "--no-hooks", git(a, "remote", "get-url", "origin"), str(c), cwd=tmp_path).code == 0
    git(c, "config", "aipass.clone", "box-c")
    join(a, c)
    git(b, "pull", "-q", "--ff-only", "origin", "main")
    task = deliver(a)
    syncs = [subprocess.Popen([sys.executable, "-m", "aipass_git", "sync", "--json"], cwd=where,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for where in (a, b, c)]
    for proc in syncs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    # each clone that saw the dispatch woke api; the claims decide who runs it
    wait_for(lambda: runs_of(fake_cli, task) == 1 and any(
        e.get("event") == "finished" and e.get("dispatch") == task for where in (a, b, c) for e in events(where)),
        "the dispatch to finish somewhere", seconds=60)
    for where in (a, b, c, a, b, c):
        assert main_in(where, "sync") == 0
    holders = {claim_in(where, task) for where in (a, b, c)}
    assert len(holders) == 1 and holders <= {"box-a", "box-b", "box-c"}
    assert runs_of(fake_cli, task) == 1
    assert sum(1 for where in (a, b, c) for e in events(where) if e.get("event") == "wake" and e.get("dispatch") == task) == 1


def test_sync_watch_goes_on_until_interrupted(pair, cli):
    a, _ = pair
    proc = subprocess.Popen([sys.executable, "-m", "aipass_git", "sync", "--watch", "1"], cwd=a,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = proc.stdout.readline()
    assert "in sync with origin" in first
    second = proc.stdout.readline()  # the next round, a second later
    assert "in sync with origin" in second
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode in (0, 130) and "Traceback" not in err
