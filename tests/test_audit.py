"""Each standard fails on a repository made to break it, and passes on a clean one."""

import json
from pathlib import Path

import pytest
from conftest import git, make_desk

from aipass_git.audit.standards import BUILTIN
from aipass_git.core import ids
from aipass_git.core.repo import discover

ALL_IDS = sorted(s.id for s in BUILTIN)


@pytest.fixture
def clean_repo(mail_repo: Path) -> Path:
    """The mail repository with a command for the `command` provider its agents use."""
    config = mail_repo / ".aipass/config.yaml"
    config.write_text(config.read_text().replace("    argv: []", "    argv: [\"true\"]"))
    git(mail_repo, "commit", "-qam", "a command for the command provider")
    return mail_repo


def audit(cli, repo, *args):
    result = cli("audit", "--json", *args, cwd=repo)
    doc = json.loads(result.out)
    return result.code, doc["findings"]


def passport(repo: Path, agent: str, **changes) -> None:
    path = repo / f".aipass/agents/{agent}/passport.json"
    doc = json.loads(path.read_text())
    doc.update(changes)
    path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")


def memory(repo: Path, agent: str, texts: list[str]) -> None:
    path = repo / f".aipass/agents/{agent}/memory.json"
    doc = json.loads(path.read_text())
    doc["learnings"] = [{"id": _id(i), "created": "2026-01-01T00:00:00Z", "text": t} for i, t in enumerate(texts)]
    path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")


def _id(i: int) -> str:
    from aipass_git.core import ids

    return ids.new_id(now_ms=1_700_000_000_000 + i)


def commit_file(repo: Path, rel: str, text: str | bytes, author: str | None = None) -> None:
    path = repo / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    git(repo, "add", rel)
    env_args = ["-c", f"user.name={author}", "-c", f"user.email={author}@aipass.invalid"] if author else []
    git(repo, *env_args, "commit", "-qm", f"add {rel}")


def archive(repo: Path, lines: list[str]) -> Path:
    path = repo / ".aipass/agents/api/archive/2026-01.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(l + "\n" for l in lines))
    return path


RECORD = '{"archived":"2026-01-02T00:00:00Z","entry":{"created":"2026-01-01T00:00:00Z","id":"%s","text":"%s"},"section":"learnings"}'


def break_archive_append_only(repo, cli):
    archive(repo, [RECORD % (_id(1), "one"), RECORD % (_id(2), "two")])
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "archive")
    archive(repo, [RECORD % (_id(1), "rewritten"), RECORD % (_id(2), "two")])


def break_mailbox_state(repo, cli):
    from aipass_git.core.repo import discover
    from aipass_git.mail import mailbox
    from aipass_git.mail.postoffice import PostOffice
    from aipass_git.store.events import Event
    from aipass_git.store.objects import Ident

    assert cli("send", "@api", "hello", "b", cwd=repo).code == 0
    with PostOffice(discover(repo)) as po:
        [line] = [l for l in mailbox.MailboxReader(po.store, "api").summaries() if l["subject"] == "hello"]

        def drop_index(view):
            view.delete(mailbox.index_path(line["id"]))
            return Event("tamper", "tamper", Ident("Test Human", "human@example.invalid"))

        po.store.append(mailbox.ref_for("api"), drop_index)


def break_secret_mail(repo, cli):
    """A secret in mail that came in without the sender's --allow-secret (an older
    aipass, another tool writing the ref): written straight through the store."""
    from aipass_git.core.repo import discover
    from aipass_git.mail import mailbox, message as msg
    from aipass_git.store.events import EventStore
    from aipass_git.store.objects import Ident

    leaked = msg.build(sender="human", recipient="api", subject="creds", body="-----BEGIN RSA PRIVATE KEY-----\nabc")
    with EventStore(discover(repo)) as store:
        store.append(mailbox.ref_for("api"), mailbox.deliver(leaked, Ident("Test Human", "human@example.invalid")))


def break_signed_mail(repo, cli):
    """A delivery committed with plain git: no signature."""
    from test_trust import forge

    forge(repo, "api", "unsigned", kind="mail")


def break_signed_records(repo, cli):
    """A plan record rewritten with plain git: no signature."""
    from test_trust import DEVPULSE, forge_record

    made = json.loads(cli("plan", "new", "the docs", "-t", "research", "--set", "agent=api", "--no-start", "--json",
                          cwd=repo).out)["plan"]
    forge_record(repo, f"refs/aipass/plans/{made['id']}", "plan: created\n\nAipass-Event: created\n", DEVPULSE)


def break_plan_moving(repo, cli):
    """A plan whose only phase waits for an agent that is then retired."""
    assert cli("plan", "new", "the docs", "-t", "research", "--set", "agent=api", "--no-start", cwd=repo).code == 0
    assert cli("agent", "retire", "api", cwd=repo).code == 0


def break_retired(repo, cli):
    assert cli("send", "@docs", "pending", "b", cwd=repo).code == 0
    assert cli("agent", "retire", "docs", cwd=repo).code == 0


def break_claim_crossed(repo, cli):
    assert cli("claim", "src/**", cwd=repo, env={"AIPASS_AGENT": "api"}).code == 0
    (repo / "src").mkdir(exist_ok=True)
    (repo / "src/crossed.py").write_text("x = 1\n")
    git(repo, "add", "src/crossed.py")
    git(repo, "commit", "-q", "--no-verify", "-m", "past the hook, into @api's claim")


def owns_src(repo):
    passport(repo, "api", owns=["src/**"])
    commit_file(repo, "tests/test_app.py", "def test_x():\n    assert True\n")


BREAKERS = {
    "aipass.no-links": lambda r, c: (r / ".aipass/notes.md").symlink_to("../README.md"),
    "aipass.config": lambda r, c: (r / ".aipass/config.yaml").write_text("v: [\n"),
    "aipass.passport": lambda r, c: passport(r, "api", status="asleep"),
    "aipass.memory": lambda r, c: (r / ".aipass/agents/api/memory.json").write_text("{}"),
    "aipass.memory-caps": lambda r, c: memory(r, "api", [f"entry {i}" for i in range(20)]),
    "aipass.archive": lambda r, c: archive(r, ["not json"]),
    "aipass.archive-append-only": break_archive_append_only,
    "aipass.agent-files": lambda r, c: (r / ".aipass/agents/api/README.md").unlink(),
    "aipass.orchestrator": lambda r, c: (r / ".aipass/config.yaml").write_text(
        (r / ".aipass/config.yaml").read_text().replace("orchestrator: devpulse", "orchestrator: ghost")),
    "aipass.retired-not-addressed": break_retired,
    "aipass.provider": lambda r, c: passport(r, "api", provider="nope"),
    "ownership.globs-match": lambda r, c: passport(r, "api", owns=["nothing/**"]),
    "ownership.no-overlap": lambda r, c: (passport(r, "api", owns=["src/**"]), passport(r, "docs", owns=["src/*.py"])),
    "secrets.aipass": lambda r, c: memory(r, "api", ["deploy key AKIAABCDEFGHIJKLMNOP"]),
    "secrets.files": lambda r, c: commit_file(r, "config/settings.ini", "token = ghp_" + "a" * 36 + "\n"),
    "secrets.mail": break_secret_mail,
    "secrets.commits": lambda r, c: git(r, "commit", "-q", "--allow-empty", "-m", "deploy with AKIAABCDEFGHIJKLMNOP"),
    "hygiene.conflict-markers": lambda r, c: commit_file(r, "notes.txt", "a\n<<<<<<< HEAD\nb\n=======\nc\n>>>>>>> other\n"),
    "hygiene.file-size": lambda r, c: commit_file(r, "big.bin", b"x" * (5 * 1024 * 1024 + 1)),
    "hygiene.home-paths": lambda r, c: memory(r, "api", ["the data is in /home/alice/data/prices.csv"]),
    "hygiene.canonical-json": lambda r, c: (r / ".aipass/agents/api/passport.json").write_text(
        json.dumps(json.loads((r / ".aipass/agents/api/passport.json").read_text()))),
    "refs.well-formed": lambda r, c: git(r, "update-ref", "refs/aipass/junk/x", "HEAD"),
    "refs.mailbox-state": break_mailbox_state,
    "refs.signed-mail": break_signed_mail,
    "refs.signed-records": break_signed_records,
    "aipass.allowed-signers": lambda r, c: (r / ".aipass/allowed_signers").write_text(
        (r / ".aipass/allowed_signers").read_text() + "mallory@example.invalid ssh-ed25519 " + "A" * 68 + "\n"),
    "plans.readable": lambda r, c: git(r, "update-ref", f"refs/aipass/plans/{ids.new_id()}", "HEAD"),
    "plans.moving": break_plan_moving,
    "refs.leftover-batches": lambda r, c: git(r, "update-ref", "refs/aipass-import/abc/0", "HEAD"),
    "claims.crossed": break_claim_crossed,
    "claims.proven": lambda r, c: git(r, "update-ref", "refs/aipass/claims/api", "HEAD"),  # no claims.json in it
    "branches.no-agent-commits-on-base": lambda r, c: commit_file(r, "direct.txt", "x", author="api"),
    "branches.desk-owner": lambda r, c: (make_desk(r, "api"), commit_file(r.parent / "desk-api", "x.txt", "x", author="docs")),
    "python.compiles": lambda r, c: (owns_src(r), commit_file(r, "src/bad.py", "def f(:\n")),
    "python.no-silent-except": lambda r, c: (owns_src(r), commit_file(r, "src/quiet.py", "try:\n    x = 1\nexcept:\n    pass\n")),
    "python.no-debug-leftovers": lambda r, c: (owns_src(r), commit_file(r, "src/debug.py", "def f():\n    breakpoint()\n")),
    "python.tests-exist": lambda r, c: passport(r, "api", owns=["src/**"]),
}


def test_every_standard_has_a_breaking_fixture():
    assert sorted(BREAKERS) == ALL_IDS
    assert len(ALL_IDS) >= 25


def test_a_clean_repository_passes_every_standard(clean_repo: Path, cli):
    code, findings = audit(cli, clean_repo)
    assert (code, findings) == (0, [])
    assert f"clean: {len(ALL_IDS)} standards" in cli("audit", cwd=clean_repo).out


@pytest.mark.parametrize("standard", ALL_IDS)
def test_each_standard_finds_what_breaks_it(clean_repo: Path, cli, standard):
    BREAKERS[standard](clean_repo, cli)
    code, findings = audit(cli, clean_repo)
    mine = [f for f in findings if f["standard"] == standard]
    assert mine, f"{standard} found nothing; all findings: {findings}"
    assert all(f["message"] and f["path"] for f in mine)
    severity = next(s.severity for s in BUILTIN if s.id == standard)
    if any(f["severity"] == "error" for f in findings):
        assert code == 1
    elif severity != "error":
        assert code == 0


def test_findings_are_deterministic_and_sorted(clean_repo: Path, cli):
    BREAKERS["hygiene.conflict-markers"](clean_repo, cli)
    BREAKERS["ownership.globs-match"](clean_repo, cli)
    first = audit(cli, clean_repo)[1]
    assert first == audit(cli, clean_repo)[1]
    keys = [(f["path"], f["line"], f["standard"]) for f in first]
    assert keys == sorted(keys)


def test_a_crashing_standard_is_a_finding_not_a_skip(clean_repo: Path, cli):
    folder = clean_repo / ".aipass/standards"
    folder.mkdir()
    (folder / "local.py").write_text(
        "from aipass_git.audit.engine import Problem, standard\n"
        "@standard('local.boom', 'always crashes')\n"
        "def boom(ctx):\n    raise RuntimeError('kaput')\n    yield\n"
        "@standard('local.todo', 'no TODO in README', severity='warning')\n"
        "def todo(ctx):\n    if 'TODO' in (ctx.text('README.md') or ''):\n        yield Problem('README.md', 'has a TODO')\n"
        "STANDARDS = [boom, todo]\n"
    )
    (clean_repo / "README.md").write_text("# project\nTODO: write\n")
    git(clean_repo, "add", ".aipass/standards")
    code, findings = audit(cli, clean_repo)
    assert code == 1
    crashed = [f for f in findings if f["standard"] == "audit.crashed"]
    assert crashed and "local.boom crashed: RuntimeError: kaput" in crashed[0]["message"]
    assert any(f["standard"] == "local.todo" for f in findings)
    (folder / "broken.py").write_text("import nowhere_to_be_found\n")
    git(clean_repo, "add", ".aipass/standards")
    assert any(f["path"] == ".aipass/standards/broken.py" and "declares no standard" in f["message"]
               for f in audit(cli, clean_repo)[1])
    (folder / "broken.py").write_text((folder / "local.py").read_text().replace("local.", "other.") + "import nowhere\n")
    git(clean_repo, "add", ".aipass/standards")
    assert any("could not load: ModuleNotFoundError" in f["message"] for f in audit(cli, clean_repo)[1])


def test_bypasses_need_a_reason_and_expire(clean_repo: Path, cli):
    BREAKERS["ownership.globs-match"](clean_repo, cli)
    bypass = clean_repo / ".aipass/audit-bypass.yaml"
    bypass.write_text("- standard: ownership.globs-match\n  path: .aipass/agents/api/*\n  reason: planned paths\n")
    code, findings = audit(cli, clean_repo)
    assert findings == [] and code == 0
    bypass.write_text(bypass.read_text() + "  expires: 2020-01-01\n")
    code, findings = audit(cli, clean_repo)
    assert {f["standard"] for f in findings} == {"ownership.globs-match", "audit.bypass-expired"} and code == 1
    bypass.write_text("- standard: hygiene.file-size\n  path: '*'\n  reason: none left\n")
    assert {f["standard"] for f in audit(cli, clean_repo)[1]} == {"ownership.globs-match", "audit.bypass-unused"}
    bypass.write_text("- standard: hygiene.file-size\n  path: '*'\n")
    result = cli("audit", cwd=clean_repo)
    assert result.code == 2 and "field '[0].reason': is missing" in result.err


def test_sarif_has_the_2_1_0_shape(clean_repo: Path, cli, tmp_path: Path):
    BREAKERS["hygiene.conflict-markers"](clean_repo, cli)
    out = tmp_path / "audit.sarif"
    assert cli("audit", "--sarif", str(out), cwd=clean_repo).code == 1
    doc = json.loads(out.read_text())
    assert doc["version"] == "2.1.0" and doc["$schema"].endswith("sarif-2.1.0.json")
    [run] = doc["runs"]
    rules = run["tool"]["driver"]["rules"]
    assert {r["id"] for r in rules} >= set(ALL_IDS)
    for rule in rules:
        assert rule["shortDescription"]["text"] and rule["defaultConfiguration"]["level"] in ("error", "warning", "note")
    result = [r for r in run["results"] if r["level"] == "error"][0]  # the first of the three markers
    assert rules[result["ruleIndex"]]["id"] == result["ruleId"] == "hygiene.conflict-markers"
    assert result["level"] == "error" and result["message"]["text"]
    location = result["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"] == "notes.txt" and location["region"]["startLine"] == 2


def test_changed_and_paths_limit_the_file_standards(clean_repo: Path, cli):
    commit_file(clean_repo, "old.txt", "<<<<<<< HEAD\n")
    git(clean_repo, "branch", "-f", "base-here")
    (clean_repo / "new.txt").write_text(">>>>>>> theirs\n")
    _, changed = audit(cli, clean_repo, "--changed", "--base", "base-here")
    assert {f["path"] for f in changed if f["standard"] == "hygiene.conflict-markers"} == {"new.txt"}
    _, only = audit(cli, clean_repo, "old.txt")
    assert {f["path"] for f in only if f["standard"] == "hygiene.conflict-markers"} == {"old.txt"}
    listed = cli("audit", "--list", cwd=clean_repo)
    assert listed.code == 0 and all(i in listed.out for i in ALL_IDS)


def test_sarif_is_valid_against_the_official_schema(clean_repo: Path, cli, tmp_path: Path):
    import jsonschema

    folder = clean_repo / ".aipass/standards"
    folder.mkdir()
    (folder / "local.py").write_text(
        "from aipass_git.audit.engine import Problem, standard\n"
        "@standard('local.note', 'a note on odd file names', severity='info')\n"
        "def note(ctx):\n    yield Problem('dir with space/\u00fc#1.txt', 'odd name', line=3)\n"
        "STANDARDS = [note]\n"
    )
    git(clean_repo, "add", ".aipass/standards/local.py")
    BREAKERS["hygiene.conflict-markers"](clean_repo, cli)
    out = tmp_path / "audit.sarif"
    assert cli("audit", "--sarif", str(out), cwd=clean_repo).code == 1
    doc = json.loads(out.read_text())
    schema = json.loads((Path(__file__).parent / "sarif/sarif-2.1.0.json").read_text())
    jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).validate(doc)
    [run] = doc["runs"]
    [note] = [r for r in run["results"] if r["ruleId"] == "local.note"]
    assert note["level"] == "note"
    assert note["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "dir%20with%20space/%C3%BC%231.txt"
    rule = run["tool"]["driver"]["rules"][note["ruleIndex"]]
    assert rule["defaultConfiguration"]["level"] == "note"


@pytest.mark.parametrize("standard", ["secrets.mail", "refs.mailbox-state"])
def test_a_repeat_audit_reads_only_what_changed_and_still_finds_it(clean_repo: Path, cli, standard):
    # the first audit finds every mailbox clean and remembers their tips; the break comes after
    assert cli("send", "@api", "first", "nothing to see", cwd=clean_repo).code == 0
    assert audit(cli, clean_repo) == (0, [])
    assert (discover(clean_repo).runtime_dir / "audit" / f"{standard}.json").exists()
    BREAKERS[standard](clean_repo, cli)
    mine = [f for f in audit(cli, clean_repo)[1] if f["standard"] == standard]
    assert mine, f"{standard} missed what came after its last clean audit"
    assert [f for f in audit(cli, clean_repo)[1] if f["standard"] == standard] == mine  # reported until fixed


def test_a_folder_named_like_the_package_in_the_repository_runs_nothing(clean_repo: Path, cli):
    # the project standards' worker starts in the repository: its own aipass_git/ must not
    # stand in for the installed package (a hostile repository, or this project's checkout)
    fake = clean_repo / "aipass_git" / "audit"
    fake.mkdir(parents=True)
    (clean_repo / "aipass_git" / "__init__.py").write_text("")
    (fake / "__init__.py").write_text("")
    (fake / "project_worker.py").write_text("open('HIJACKED', 'w').write('ran')\n")
    folder = clean_repo / ".aipass/standards"
    folder.mkdir()
    (folder / "local.py").write_text(
        "from aipass_git.audit.engine import Problem, standard\n"
        "@standard('local.note', 'a note', severity='info')\n"
        "def note(ctx):\n    yield Problem('README.md', 'seen', line=1)\n"
        "STANDARDS = [note]\n"
    )
    git(clean_repo, "add", "-A")
    code, findings = audit(cli, clean_repo)
    assert [f for f in findings if f["standard"] == "local.note"]  # our worker ran the standard
    assert not (clean_repo / "HIJACKED").exists()
