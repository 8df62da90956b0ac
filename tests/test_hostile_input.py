"""Hostile input at every boundary: names, ids, subjects, bodies, YAML, JSON, symbolic
links, file names, the environment, hooksPath, project standards and SHA-256 repositories.

Each case asserts the exit code, what the message says, and, for a refusal, that nothing
was written: no ref moved, no object added, the index and the work tree as they were.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st
from conftest import BIN_DIR, git, make_desk, snapshot

AWS_KEY = "AKIAABCDEFGHIJKLMNOP"
ESC = "\x1b"


def state(repo: Path) -> dict:
    """Everything a refused command must leave alone."""
    return {
        "refs": git(repo, "for-each-ref", "--format=%(refname) %(objectname)"),
        "head": git(repo, "rev-parse", "HEAD"),
        "index": git(repo, "ls-files", "-s", "-z"),
        "objects": git(repo, "cat-file", "--batch-all-objects", "--batch-check=%(objectname)"),
        "files": snapshot(repo)[2],
    }


@contextmanager
def unchanged(repo: Path):
    before = state(repo)
    yield
    after = state(repo)
    for key in before:
        assert after[key] == before[key], f"{key} changed"


def refused(result, *words: str) -> None:
    """Exit 2, every WORD in the error, and a message that cannot drive the terminal."""
    assert result.code == 2, (result.code, result.out, result.err)
    for word in words:
        assert word in result.err, (word, result.err)
    assert ESC not in result.err and "\u202e" not in result.err


def run(repo: Path, *args: str | bytes, env: dict | None = None, input: bytes | None = None, timeout: float = 120):
    """`git ARGS` as a user runs it, with the installed git-aipass on PATH. The timeout only
    turns a hang (a defect these tests look for) into a failure instead of a stuck run."""
    full = {**os.environ, "PATH": f"{BIN_DIR}{os.pathsep}{os.environ['PATH']}", **(env or {})}
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, env=full, input=input, timeout=timeout)


def message_id(cli, repo: Path, *args: str) -> str:
    result = cli("send", *args, "--json", cwd=repo)
    assert result.code == 0, result.err
    return json.loads(result.out)["messages"][0]["id"]


# -- agent names ----------------------------------------------------------------------------

@pytest.mark.parametrize("name, words", [
    ("../x", "must start with a letter"),
    ("a/b", "'/'"),
    ("a b", "' '"),
    ("a\nb", "'\\n'"),
    ("\u00e9t\u00e9", "must start with a letter"),
    ("a\u202eb", "\\u202e"),
    ("a\u200bb", "\\u200b"),
    ("a\x1b[2Jb", "\\x1b"),
    ("", "empty"),
    ("x" * 40, "at most 32"),
    ("human", "reserved"),
    ("Api", "upper case"),
    ("a..b", "'.'"),
])
def test_agent_names_are_refused(mail_repo: Path, cli, name, words):
    with unchanged(mail_repo):
        refused(cli("agent", "new", "--role", "r", "--", name, cwd=mail_repo), "agent name", words)


def test_a_name_that_looks_like_an_option_is_an_option(mail_repo: Path, cli):
    with unchanged(mail_repo):
        refused(cli("agent", "new", "-rf", cwd=mail_repo), "No such option")
        refused(cli("agent", "new", "--role", "r", "--", "-rf", cwd=mail_repo), "agent name")


@pytest.mark.parametrize("recipient", ["@../x", "@a\nb", "@nobody-here", "@api\u202e", "@"])
def test_recipients_are_refused(mail_repo: Path, cli, recipient):
    with unchanged(mail_repo):
        result = cli("send", recipient, "subject", "body", cwd=mail_repo)
        assert result.code == 2 and "error:" in result.err
        assert ESC not in result.err and "\u202e" not in result.err


# -- message ids --------------------------------------------------------------------------

@pytest.mark.parametrize("command", ["read", "thread", "done", "reply"])
@pytest.mark.parametrize("bad", ["a\ncontents HEAD:README.md", "../x", "-x", "zz\x1b[2J", "", "0" * 26])
def test_message_ids_are_refused(mail_repo: Path, cli, command, bad):
    message_id(cli, mail_repo, "@human", "hello", "body")
    extra = ["an answer"] if command == "reply" else []
    with unchanged(mail_repo):
        result = cli(command, "--", bad, *extra, cwd=mail_repo)
        refused(result, "id" if bad != "0" * 26 else "no message")


# -- subjects -------------------------------------------------------------------------------

@pytest.mark.parametrize("subject, words", [
    ("left\u202eright", "U+202E"),
    ("isolate\u2066x", "U+2066"),
    ("zero\u200bwidth", "U+200B"),
    ("bom\ufeffx", "U+FEFF"),
    ("soft\u00adhyphen", "U+00AD"),
    ("invisible\u2062times", "U+2062"),
    ("tag\U000e0041x", "U+E0041"),
    ("line\u2028separator", "U+2028"),
    ("bell\x07", "U+0007"),
    ("clear\x1b[2J", "U+001B"),
    ("c1\x9b2J", "U+009B"),
    ("bad\udcff", "not UTF-8"),
    ("two\nlines", "line break"),
    ("x" * 300, "at most 200"),
])
def test_subjects_that_would_change_the_display_are_refused(mail_repo: Path, cli, subject, words):
    with unchanged(mail_repo):
        refused(cli("send", "@api", subject, "body", cwd=mail_repo), "subject", words)
        refused(cli("dispatch", "@api", subject, "body", cwd=mail_repo), "subject", words)


def test_invalid_utf8_in_argv_and_on_stdin_exits_2(mail_repo: Path):
    with unchanged(mail_repo):
        argv = run(mail_repo, b"aipass", b"send", b"@api", b"caf\xe9", b"body")
        assert argv.returncode == 2 and b"not UTF-8" in argv.stderr
        stdin = run(mail_repo, "aipass", "send", "@api", "subject", input=b"body \xff\xfe")
        assert stdin.returncode == 2 and b"not valid UTF-8" in stdin.stderr


def test_invalid_utf8_in_memory_and_search_exits_2_and_a_file_name_is_percent_encoded(mail_repo: Path, cli, tmp_path: Path):
    with unchanged(mail_repo):
        added = run(mail_repo, b"aipass", b"memory", b"add", b"--agent", b"@api", b"caf\xe9")
        assert added.returncode == 2 and b"the memory entry is not valid UTF-8" in added.stderr, added.stderr
        search = run(mail_repo, b"aipass", b"memory", b"search", b"caf\xe9")
        assert search.returncode == 2 and b"the query is not valid UTF-8" in search.stderr, search.stderr
    (mail_repo / os.fsdecode(b"caf\xe9.txt")).write_text(f"key = {AWS_KEY}\n")
    git(mail_repo, "add", "-A")
    sarif = tmp_path / "audit.sarif"
    assert cli("audit", "--sarif", str(sarif), cwd=mail_repo).code == 1
    [result] = [r for r in json.loads(sarif.read_text())["runs"][0]["results"] if r["ruleId"] == "secrets.files"]
    assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "caf%E9.txt"


# -- bodies ---------------------------------------------------------------------------------

def test_bodies_keep_control_characters_but_the_terminal_sees_them_escaped(mail_repo: Path, cli):
    body = "clear\x1b[2J title\x1b]0;pwned\x07 bidi\u202e end"
    mid = message_id(cli, mail_repo, "@api", "escapes", body)
    shown = cli("read", mid, cwd=mail_repo, env={"AIPASS_AGENT": "api"})
    assert shown.code == 0 and ESC not in shown.out and "\u202e" not in shown.out
    assert "\\x1b[2J" in shown.out and "<U+202E>" in shown.out
    raw = cli("read", mid, "--raw", cwd=mail_repo, env={"AIPASS_AGENT": "api"})
    assert body in raw.out
    as_json = cli("read", mid, "--json", cwd=mail_repo, env={"AIPASS_AGENT": "api"})
    assert json.loads(as_json.out)["body"] == body
    for listing in (("inbox", "@api"), ("thread", mid)):
        assert ESC not in cli(*listing, cwd=mail_repo).out


def test_a_nul_byte_in_a_task_is_refused(mail_repo: Path, cli):
    with unchanged(mail_repo):
        refused(cli("dispatch", "@api", "task", "a\x00b", cwd=mail_repo), "NUL")


# -- secrets on the way in ------------------------------------------------------------------

SECRETS = {
    "AWS access key": f"deploy with {AWS_KEY}",
    "private key": "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----",
    "GitHub token": "token ghp_" + "a1B2c3D4e5" * 3 + "abcdef",
    "secret assignment": 'AWS_SECRET_ACCESS_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzq8Lw3eX9p"',
    "password assignment": "DB_PASSWORD=Xk29vLq7Ztp4RmW8sYc1",
    "token assignment": "export SLACK_BOT_TOKEN='q9Zr7TmX2kLp4VwB8nYc3HsD'",
}


@pytest.mark.parametrize("kind", sorted(SECRETS))
def test_a_message_holding_a_secret_is_refused_before_anything_is_written(mail_repo: Path, cli, kind):
    with unchanged(mail_repo):
        result = cli("send", "@api", "credentials", "--", SECRETS[kind], cwd=mail_repo)
        refused(result, "nothing was written", "--allow-secret")
        assert SECRETS[kind].splitlines()[0] not in result.err  # the error never repeats the secret


def test_reply_dispatch_and_memory_refuse_secrets_too(mail_repo: Path, cli):
    mid = message_id(cli, mail_repo, "@api", "question", "what is the key?")
    with unchanged(mail_repo):
        refused(cli("reply", mid, f"it is {AWS_KEY}", cwd=mail_repo, env={"AIPASS_AGENT": "api"}), "AWS")
        refused(cli("dispatch", "@api", "deploy", f"use {AWS_KEY}", cwd=mail_repo), "AWS")
        refused(cli("memory", "add", "--agent", "@api", f"the key is {AWS_KEY}", cwd=mail_repo), "AWS")
        refused(cli("send", "@api", f"key {AWS_KEY}", "body", cwd=mail_repo), "AWS")


def test_low_entropy_values_are_not_secrets_and_allow_secret_is_recorded(mail_repo: Path, cli):
    assert cli("send", "@api", "config", 'DB_PASSWORD = "changeme"', cwd=mail_repo).code == 0
    result = cli("send", "@api", "test fixture", f"fake key {AWS_KEY}", "--allow-secret", "--json", cwd=mail_repo)
    assert result.code == 0
    assert "Aipass-Allowed-Secret: AWS access key" in git(mail_repo, "log", "-1", "--format=%B", "refs/aipass/mail/api")


def test_a_pr_that_would_be_refused_is_never_written_and_shows_escaped(mail_repo: Path, cli):
    desk = make_desk(mail_repo, "api")
    (desk / "work.txt").write_text("x\n")
    git(desk, "add", "-A")
    git(desk, "commit", "-qm", "api: work \x1b]0;title\x07")
    with unchanged(mail_repo):
        # the record was written, then its notice refused: a PR nobody could read any more
        refused(cli("pr", "open", "--title", "left\u202eright", cwd=desk), "--title", "U+202E")
        refused(cli("pr", "open", cwd=desk), "the PR title", "U+001B", "--title")
        refused(cli("pr", "open", "--title", f"deploy with {AWS_KEY}", cwd=desk), "AWS access key", "nothing was written")
        refused(cli("pr", "open", "--title", "work", "--body", f"key {AWS_KEY}", cwd=desk), "AWS access key")
    opened = cli("pr", "open", "--title", "work", "--body", "clear\x1b[2J", "--json", cwd=desk)
    assert opened.code == 0, opened.err
    shown = cli("pr", "show", json.loads(opened.out)["pr"]["id"], cwd=mail_repo)
    assert shown.code == 0 and ESC not in shown.out
    assert "clear\\x1b[2J" in shown.out and "work \\x1b]0;title\\x07" in shown.out


# -- YAML -----------------------------------------------------------------------------------

def test_a_key_given_twice_in_the_config_is_refused_with_both_lines(mail_repo: Path, cli):
    config = mail_repo / ".aipass/config.yaml"
    lines = config.read_text().splitlines()
    first = next(i for i, l in enumerate(lines) if l.startswith("orchestrator:")) + 1
    config.write_text(config.read_text() + "orchestrator: api\n")
    with unchanged(mail_repo):
        refused(cli("send", "@api", "s", "b", cwd=mail_repo), "field 'orchestrator'",
                f"given twice, on lines {first} and {len(lines) + 1}")


def test_a_key_given_twice_in_the_bypass_file_is_refused(mail_repo: Path, cli):
    (mail_repo / ".aipass/audit-bypass.yaml").write_text(
        "- standard: hygiene.file-size\n  path: '*'\n  reason: big\n  path: 'src/*'\n")
    refused(cli("audit", cwd=mail_repo), "field 'path'", "given twice")


def test_yaml_aliases_are_refused_before_they_expand(mail_repo: Path, cli):
    config = mail_repo / ".aipass/config.yaml"
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8))
    config.write_text(config.read_text() + bomb)
    with unchanged(mail_repo):
        refused(cli("send", "@api", "s", "b", cwd=mail_repo), "aliases", "write the value out")


def test_yaml_tags_never_construct_objects(mail_repo: Path, cli, tmp_path: Path):
    marker = tmp_path / "ran"
    config = mail_repo / ".aipass/config.yaml"
    config.write_text(config.read_text() + f'x: !!python/object/apply:os.system ["touch {marker}"]\n')
    with unchanged(mail_repo):
        refused(cli("send", "@api", "s", "b", cwd=mail_repo), "could not determine a constructor")
    assert not marker.exists()


def test_a_config_that_is_not_utf8_or_nests_too_deep_is_refused(mail_repo: Path, cli):
    config = mail_repo / ".aipass/config.yaml"
    good = config.read_bytes()
    config.write_bytes(good + b"x: caf\xe9\n")
    with unchanged(mail_repo):
        refused(cli("send", "@api", "s", "b", cwd=mail_repo), "not UTF-8")
    config.write_bytes(good + b"x: " + b"[" * 5000 + b"]" * 5000 + b"\n")
    with unchanged(mail_repo):
        refused(cli("send", "@api", "s", "b", cwd=mail_repo), "nesting depth")


# -- JSON -----------------------------------------------------------------------------------

def test_a_key_given_twice_in_a_passport_is_refused(mail_repo: Path, cli):
    path = mail_repo / ".aipass/agents/api/passport.json"
    path.write_text(path.read_text().replace('"owns": [', '"owns": ["src/**"], "owns": [', 1))
    refused(cli("agent", "list", cwd=mail_repo), "passport.json", "field 'owns'", "given twice")


def test_a_key_given_twice_in_memory_is_refused(mail_repo: Path, cli):
    path = mail_repo / ".aipass/agents/api/memory.json"
    path.write_text(path.read_text().replace('"agent":', '"agent": "docs", "agent":', 1))
    with unchanged(mail_repo):
        refused(cli("memory", "show", "@api", cwd=mail_repo), "memory.json", "given twice")


@pytest.mark.parametrize("content, words", [
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ('{"v": 1, "name": "api"', "not valid JSON"),
    (b"{\"name\": \"caf\xe9\"}", "not UTF-8"),
    ("[]", "field"),
])
def test_broken_passports_are_refused_by_name(mail_repo: Path, cli, content, words):
    path = mail_repo / ".aipass/agents/api/passport.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    refused(cli("agent", "list", cwd=mail_repo), ".aipass/agents/api/passport.json", words)


# -- symbolic links -------------------------------------------------------------------------

def test_an_archive_linked_outside_is_never_read_or_committed(mail_repo: Path, cli, tmp_path: Path):
    outside = tmp_path / "passwd"
    outside.write_text("root:x:0:0:SECRET-OUTSIDE:/root:/bin/sh\n")
    config = mail_repo / ".aipass/config.yaml"
    config.write_text(config.read_text().replace("memory_entries_per_section: 15", "memory_entries_per_section: 1"))
    git(mail_repo, "commit", "-qam", "small memory")
    assert cli("memory", "add", "--agent", "@api", "first", cwd=mail_repo).code == 0
    archive = mail_repo / ".aipass/agents/api/archive"
    archive.mkdir(exist_ok=True)
    from aipass_git.core import clock
    (archive / f"{clock.utc_now()[:7]}.jsonl").symlink_to(outside)
    with unchanged(mail_repo):
        refused(cli("memory", "add", "--agent", "@api", "second", cwd=mail_repo), "symbolic link", "archive")
    assert "SECRET-OUTSIDE" not in git(mail_repo, "log", "-p", "--all")


def test_a_linked_agent_folder_or_config_is_refused(mail_repo: Path, cli, tmp_path: Path):
    elsewhere = tmp_path / "elsewhere"
    (mail_repo / ".aipass/agents/docs").rename(elsewhere)
    (mail_repo / ".aipass/agents/docs").symlink_to(elsewhere)
    refused(cli("agent", "list", cwd=mail_repo), ".aipass/agents/docs", "symbolic link")
    (mail_repo / ".aipass/agents/docs").unlink()
    elsewhere.rename(mail_repo / ".aipass/agents/docs")
    config = mail_repo / ".aipass/config.yaml"
    (tmp_path / "config.yaml").write_bytes(config.read_bytes())
    config.unlink()
    config.symlink_to(tmp_path / "config.yaml")
    with unchanged(mail_repo):
        refused(cli("send", "@api", "s", "b", cwd=mail_repo), ".aipass/config.yaml", "symbolic link")


def test_a_linked_bypass_file_or_human_key_is_refused(mail_repo: Path, cli, tmp_path: Path):
    # a bypass file from outside could silence any standard, the link check included
    outside = tmp_path / "bypass.yaml"
    outside.write_text("- standard: aipass.no-links\n  path: '*'\n  reason: says who\n")
    (mail_repo / ".aipass/audit-bypass.yaml").symlink_to(outside)
    refused(cli("audit", cwd=mail_repo), ".aipass/audit-bypass.yaml", "symbolic link")
    (mail_repo / ".aipass/audit-bypass.yaml").unlink()
    # a human key from outside would be written into allowed_signers and trusted
    [key] = sorted((mail_repo / ".aipass/humans").glob("*.json"))
    key.rename(tmp_path / key.name)
    key.symlink_to(tmp_path / key.name)
    with unchanged(mail_repo):
        refused(cli("agent", "new", "newbie", "--role", "r", "--provider", "command", cwd=mail_repo),
                f".aipass/humans/{key.name}", "symbolic link")


def test_a_merge_never_appends_to_a_linked_archive(mail_repo: Path, cli, tmp_path: Path):
    config = mail_repo / ".aipass/config.yaml"
    config.write_text(config.read_text().replace("memory_entries_per_section: 15", "memory_entries_per_section: 2"))
    git(mail_repo, "commit", "-qam", "small memory")
    for branch, text in (("main", "base"), ("left", "left"), ("main", "main")):
        git(mail_repo, "checkout", "-q", *(["-b"] if branch == "left" else []), branch)
        assert cli("memory", "add", "--agent", "@api", text, cwd=mail_repo).code == 0
    outside = tmp_path / "victim"
    outside.write_text("outside\n")
    from aipass_git.core import clock
    (mail_repo / ".aipass/agents/api/archive").mkdir()
    (mail_repo / f".aipass/agents/api/archive/{clock.utc_now()[:7]}.jsonl").symlink_to(outside)
    merge = run(mail_repo, "merge", "-q", "--no-edit", "left")
    assert merge.returncode == 1 and b"is a symbolic link" in merge.stderr, merge.stderr
    assert outside.read_text() == "outside\n"


def test_the_audit_and_doctor_report_links_in_aipass(mail_repo: Path, cli):
    (mail_repo / ".aipass/notes.md").symlink_to("/etc/hostname")
    result = cli("audit", "--json", cwd=mail_repo)
    found = [f for f in json.loads(result.out)["findings"] if f["standard"] == "aipass.no-links"]
    assert result.code == 1 and [f["path"] for f in found] == [".aipass/notes.md"]
    doctor = cli("doctor", "--json", cwd=mail_repo)
    [links] = [c for c in json.loads(doctor.out)["checks"] if c["name"] == "links"]
    assert doctor.code == 1 and links["status"] == "error" and ".aipass/notes.md" in links["detail"]


# -- file names -----------------------------------------------------------------------------

@pytest.fixture
def hooked(mail_repo: Path, cli) -> Path:
    assert cli("hooks", "install", cwd=mail_repo).code == 0
    return mail_repo


@pytest.mark.parametrize("name", ["a\ncontents HEAD:README.md", "a\ninfo HEAD", 'q"uo\'te.txt', "-rf.txt",
                                  "--output=x.txt", " lead space.txt", "tab\there.txt", "\u00fcml\u00e4ut.txt"])
def test_pre_commit_catches_a_staged_secret_whatever_the_other_names(hooked: Path, name):
    (hooked / name).write_text("harmless\n")
    (hooked / "creds.txt").write_text(f"key = {AWS_KEY}\n")
    git(hooked, "add", "-A")
    before = git(hooked, "rev-parse", "HEAD")
    result = run(hooked, "commit", "-qm", "leak")
    assert result.returncode == 1 and b"creds.txt:1: looks like an AWS access key" in result.stderr
    assert git(hooked, "rev-parse", "HEAD") == before
    git(hooked, "rm", "-q", "--cached", "creds.txt")
    (hooked / "creds.txt").unlink()
    clean = run(hooked, "commit", "-qm", "odd names")
    assert clean.returncode == 0, clean.stderr
    tree = subprocess.run(["git", "ls-tree", "-r", "-z", "--name-only", "HEAD"], cwd=hooked, capture_output=True, text=True)
    assert name in tree.stdout.split("\0")


@pytest.mark.parametrize("name", ["creds.txt\r", "a b.txt", "a\ninfo HEAD.txt"])
def test_pre_commit_reads_the_secret_in_a_file_whatever_its_name(hooked: Path, name):
    # git's batch reader drops a carriage return before the line's end: ":creds.txt\r"
    # would be read as ":creds.txt", which is not staged, and the secret would pass
    (hooked / name).write_text(f"key = {AWS_KEY}\n")
    git(hooked, "add", "-A")
    before = git(hooked, "rev-parse", "HEAD")
    result = run(hooked, "commit", "-qm", "leak")
    assert result.returncode == 1 and b":1: looks like an AWS access key" in result.stderr
    assert git(hooked, "rev-parse", "HEAD") == before


def test_a_name_with_a_space_missing_at_the_base_is_read_as_missing(mail_repo: Path, cli):
    # cat-file answers "<name> missing", the name's spaces included
    archive = mail_repo / ".aipass/agents/api/archive"
    archive.mkdir()
    (archive / "old copy.jsonl").write_text("")
    code, found = findings(cli, mail_repo)
    assert "audit.crashed" not in {f["standard"] for f in found}, found


def test_a_commit_message_holding_a_secret_is_refused_unless_it_says_so(hooked: Path):
    (hooked / "a.txt").write_text("a\n")
    git(hooked, "add", "a.txt")
    before = git(hooked, "rev-parse", "HEAD")
    leak = run(hooked, "commit", "-qm", f"deploy with {AWS_KEY}")
    assert leak.returncode == 1 and b"the commit message looks like it holds an AWS access key" in leak.stderr
    assert git(hooked, "rev-parse", "HEAD") == before
    allowed = run(hooked, "commit", "-qm", f"fixture key {AWS_KEY}\n\nAipass-Allowed-Secret: AWS access key")
    assert allowed.returncode == 0 and git(hooked, "rev-parse", "HEAD") != before


@pytest.mark.parametrize("name", ["a\ncontents HEAD:README.md", "a\ninfo HEAD"])
def test_pr_merge_audits_a_desk_with_newline_names(mail_repo: Path, cli, name):
    desk = make_desk(mail_repo, "api")
    (desk / name).write_text("x\n")
    (desk / "creds.txt").write_text(f"key = {AWS_KEY}\n")
    git(desk, "add", "-A")
    git(desk, "commit", "-qm", "api: work")
    pr = json.loads(cli("pr", "open", "--json", cwd=desk).out)["pr"]
    base = git(mail_repo, "rev-parse", "main")
    result = cli("pr", "merge", pr["id"], cwd=mail_repo)
    assert result.code == 1 and "bounced" in result.out
    assert "creds.txt:1: looks like an AWS access key [secrets.files]" in result.out
    assert git(mail_repo, "rev-parse", "main") == base
    git(desk, "rm", "-q", "creds.txt")
    git(desk, "commit", "-qm", "api: no secret")
    assert cli("pr", "open", cwd=desk).code == 0
    merged = cli("pr", "merge", pr["id"], cwd=mail_repo)
    assert merged.code == 0, merged.err
    assert (mail_repo / name).read_text() == "x\n"


def test_audit_paths_that_start_with_a_dash_come_after_double_dash(mail_repo: Path, cli):
    (mail_repo / "-rf.txt").write_text(f"key = {AWS_KEY}\n")
    git(mail_repo, "add", "-A")
    git(mail_repo, "commit", "-qm", "dash", "--no-verify")
    result = cli("audit", "--json", "--", "-rf.txt", cwd=mail_repo)
    assert result.code == 1
    assert [f["path"] for f in json.loads(result.out)["findings"] if f["standard"] == "secrets.files"] == ["-rf.txt"]


# -- the environment ------------------------------------------------------------------------

@pytest.mark.parametrize("value, words", [
    ("../x", "must start with a letter"),
    ("api\nx", "'\\n'"),
    ("human", "reserved"),
    ("a\x1b]0;title\x07", "not allowed"),
    ("retired-one", "not an active agent"),
])
def test_a_hostile_aipass_agent_is_refused(mail_repo: Path, cli, value, words):
    with unchanged(mail_repo):
        refused(cli("send", "@docs", "s", "b", cwd=mail_repo, env={"AIPASS_AGENT": value}), "AIPASS_AGENT", words)


# -- hooksPath ------------------------------------------------------------------------------

def global_hooks_path(tmp_path: Path) -> tuple[Path, dict]:
    shared = tmp_path / "shared-hooks"
    gitconfig = tmp_path / "gitconfig"
    gitconfig.write_text(Path(os.environ["GIT_CONFIG_GLOBAL"]).read_text() + f"[core]\n\thooksPath = {shared}\n")
    return shared, {"GIT_CONFIG_GLOBAL": str(gitconfig)}


def test_hooks_never_go_into_a_global_hooks_path(repo: Path, cli, tmp_path: Path):
    shared, env = global_hooks_path(tmp_path)
    init = cli("init", cwd=repo, env=env)
    assert init.code == 0 and "warning: hooks not installed" in init.err and "global git config" in init.err
    assert "git config --local core.hooksPath" in init.err
    install = cli("hooks", "install", cwd=repo, env=env)
    refused(install, "core.hooksPath", "global git config")
    assert not shared.exists()
    doctor = cli("doctor", "--json", cwd=repo, env=env)
    [hooks] = [c for c in json.loads(doctor.out)["checks"] if c["name"] == "hooks"]
    assert hooks["status"] == "warn" and "global" in hooks["detail"]


def test_a_hooks_path_from_the_command_line_is_refused_and_a_local_one_is_used(mail_repo: Path, cli):
    result = cli("hooks", "install", cwd=mail_repo,
                 env={"GIT_CONFIG_PARAMETERS": "'core.hookspath'='/tmp/elsewhere'"})
    refused(result, "core.hooksPath", "command")
    git(mail_repo, "config", "--local", "core.hooksPath", "my-hooks")
    assert cli("hooks", "install", cwd=mail_repo).code == 0
    assert "aipass-git hook shim" in (mail_repo / "my-hooks/pre-commit").read_text()


def test_a_hook_whose_aipass_is_gone_lets_the_commit_go_on_and_says_so(mail_repo: Path, cli, tmp_path: Path):
    spaced = tmp_path / "dir with 'quotes' and spaces"
    spaced.mkdir()
    program = spaced / "git-aipass"
    program.write_text(f"#!/bin/sh\necho via-spaced >&2\nexec {BIN_DIR / 'git-aipass'} \"$@\"\n")
    program.chmod(0o755)
    assert cli("hooks", "install", cwd=mail_repo, env={"AIPASS_BIN": str(program)}).code == 0
    bare_path = {"PATH": "/usr/bin:/bin"}
    (mail_repo / "a.txt").write_text("a\n")
    git(mail_repo, "add", "a.txt")
    through = subprocess.run(["git", "commit", "-qm", "a"], cwd=mail_repo, capture_output=True, env={**os.environ, **bare_path})
    assert through.returncode == 0 and b"via-spaced" in through.stderr
    program.unlink()
    (mail_repo / "b.txt").write_text(f"key = {AWS_KEY}\n")
    git(mail_repo, "add", "b.txt")
    gone = subprocess.run(["git", "commit", "-qm", "b"], cwd=mail_repo, capture_output=True, env={**os.environ, **bare_path})
    assert gone.returncode == 0
    assert gone.stderr.count(b"\n") == 1 and b"pre-commit checks skipped" in gone.stderr
    assert git(mail_repo, "log", "-1", "--format=%s") == "b"


# -- project standards ----------------------------------------------------------------------

STANDARD = (
    "from aipass_git.audit.engine import Problem, standard\n"
    "@standard('local.readme', 'README mentions the project')\n"
    "def readme(ctx):\n    yield Problem('README.md', 'checked')\n"
    "STANDARDS = [readme]\n"
)


def project_standard(repo: Path, name: str, text: str, *, track: bool = True) -> Path:
    path = repo / ".aipass/standards" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if track:
        git(repo, "add", "-f", str(path))
    return path


def findings(cli, repo: Path, *args: str) -> tuple[int, list[dict]]:
    """The audit's exit code and findings, but for the warnings every test repository has
    (its "command" provider has no argv yet)."""
    result = cli("audit", "--json", *args, cwd=repo)
    assert result.code in (0, 1), result.err
    return result.code, [f for f in json.loads(result.out)["findings"] if f["standard"] != "aipass.provider"]


def test_untracked_and_ignored_project_standards_never_run(mail_repo: Path, cli, tmp_path: Path):
    marker = tmp_path / "ran"
    body = f"import pathlib\npathlib.Path({str(marker)!r}).write_text('x')\n" + STANDARD
    project_standard(mail_repo, "untracked.py", body, track=False)
    (mail_repo / ".gitignore").write_text(".aipass/standards/ignored.py\n")
    project_standard(mail_repo, "ignored.py", body, track=False)
    code, found = findings(cli, mail_repo)
    assert not marker.exists()
    assert [(f["path"], f["standard"]) for f in found] == [(".aipass/standards/untracked.py", "audit.project-untracked")]
    assert "git add" in found[0]["hint"]


def test_listing_and_choosing_project_standards_runs_none_of_them(mail_repo: Path, cli, tmp_path: Path):
    marker = tmp_path / "ran"
    project_standard(mail_repo, "local.py", f"import pathlib\npathlib.Path({str(marker)!r}).write_text('x')\n" + STANDARD)
    listed = cli("audit", "--list", "--json", cwd=mail_repo)
    assert listed.code == 0 and not marker.exists()
    [mine] = [s for s in json.loads(listed.out)["standards"] if not s["builtin"]]
    assert mine == {"id": "local.readme", "severity": "error", "scope": "repository",
                    "description": "README mentions the project", "builtin": False}
    assert cli("audit", "--only", "hygiene.", cwd=mail_repo).code == 0 and not marker.exists()
    code, found = findings(cli, mail_repo, "--only", "local.")
    assert marker.exists() and [f["standard"] for f in found] == ["local.readme"]


def test_a_project_standard_that_never_ends_is_stopped(mail_repo: Path, cli):
    config = mail_repo / ".aipass/config.yaml"
    config.write_text(config.read_text().replace("standards_seconds: 60", "standards_seconds: 2"))
    project_standard(mail_repo, "slow.py", STANDARD.replace("yield Problem", "while True: pass\n    yield Problem"))
    code, found = findings(cli, mail_repo)
    assert code == 1
    [stopped] = [f for f in found if f["standard"] == "audit.project-standard"]
    assert "did not finish within 2 seconds" in stopped["message"] and "standards_seconds" in stopped["hint"]


def test_a_project_standard_cannot_switch_off_the_built_in_ones(mail_repo: Path, cli):
    clear = ("from aipass_git.core import secrets\n"
             "for value in vars(secrets).values():\n"
             "    if isinstance(value, (list, set)): value.clear()\n"
             "print(json := '{\"findings\": []}')\n")
    project_standard(mail_repo, "sneaky.py", clear + STANDARD)
    (mail_repo / "creds.txt").write_text(f"key = {AWS_KEY}\n")
    git(mail_repo, "add", "creds.txt")
    code, found = findings(cli, mail_repo)
    assert code == 1 and {"secrets.files", "local.readme"} <= {f["standard"] for f in found}


@pytest.mark.parametrize("text, words", [
    (STANDARD.replace("local.readme", "secrets.files"), "id of a built-in standard"),
    (STANDARD.replace("local.readme", "audit.crashed"), "audit's own"),
    (STANDARD.replace("'README mentions the project'", "'x' + 'y'"), "not literals"),
    ("import sys\nsys.exit(0)\n" + STANDARD, "could not load: SystemExit"),
    ("import os\n", "declares no standard"),
    ("def broken(:\n", "does not parse"),
])
def test_malformed_project_standards_are_findings(mail_repo: Path, cli, text, words):
    project_standard(mail_repo, "bad.py", text)
    code, found = findings(cli, mail_repo)
    assert code == 1
    assert any(words in f["message"] for f in found if f["path"] == ".aipass/standards/bad.py"), found


def test_listing_names_a_broken_project_standard_escaped(mail_repo: Path, cli):
    project_standard(mail_repo, "x\x1b]0;title\x07.py", "def broken(:\n")
    listed = cli("audit", "--list", cwd=mail_repo)
    assert listed.code == 0 and "does not parse" in listed.err
    assert ESC not in listed.err and "x\\x1b]0;title\\x07.py" in listed.err


def test_a_project_standard_reports_only_under_the_ids_it_declares(mail_repo: Path, cli):
    smuggled = STANDARD.replace("STANDARDS = [readme]\n", (
        "from aipass_git.audit.engine import Standard\n"
        "def fake(ctx):\n    yield Problem('README.md', 'smuggled finding')\n"
        "STANDARDS = [readme]\n"
        "STANDARDS.append(Standard('secrets.files', 'd', 'file', 'error', fake))\n"))
    project_standard(mail_repo, "liar.py", smuggled)
    code, found = findings(cli, mail_repo)
    assert [(f["standard"], f["message"]) for f in found] == [("local.readme", "checked")]
    project_standard(mail_repo, "liar.py", STANDARD.replace("'checked')", "'checked', severity='critical')"))
    code, found = findings(cli, mail_repo)
    assert [f["standard"] for f in found] == ["audit.project-standard"] and "'critical'" in found[0]["message"]


# -- command-line parsing -------------------------------------------------------------------

def test_text_after_double_dash_is_text_and_unknown_options_are_named(mail_repo: Path, cli):
    result = cli("send", "@api", "subject", "--", "--changed", cwd=mail_repo)
    assert result.code == 0
    shown = cli("inbox", "@api", "--json", cwd=mail_repo)
    [message] = json.loads(shown.out)["messages"]
    read = cli("read", message["id"], "--json", cwd=mail_repo, env={"AIPASS_AGENT": "api"})
    assert json.loads(read.out)["body"] == "--changed"
    with unchanged(mail_repo):
        refused(cli("send", "@api", "subject", "--bogus", cwd=mail_repo), "--bogus")
        refused(cli("help", "nosuch", cwd=mail_repo), "no command 'nosuch'")
        refused(cli("audit", "--base", "main", cwd=mail_repo), "--base REV works with --changed")


def test_the_memory_hint_names_a_command_that_works(mail_repo: Path, cli):
    with unchanged(mail_repo):
        result = cli("memory", "add", "the tests need LC_ALL=C", cwd=mail_repo)
    refused(result, "say whose memory")
    suggested = result.err.split("name the agent: ")[1].strip()
    assert suggested == 'git aipass memory add --agent @NAME "TEXT"'
    assert cli("memory", "add", "--agent", "@api", "the tests need LC_ALL=C", cwd=mail_repo).code == 0


def test_an_owned_glob_shared_with_another_agent_is_refused(mail_repo: Path, cli):
    assert cli("agent", "new", "owner", "--role", "r", "--provider", "command", "--owns", "src/**", cwd=mail_repo).code == 0
    with unchanged(mail_repo):
        refused(cli("agent", "new", "second", "--role", "r", "--owns", "src/*.py", cwd=mail_repo),
                "src/app.py is already owned by @owner")
        refused(cli("agent", "new", "third", "--role", "r", "--owns", "src/**", cwd=mail_repo), "@owner")


def test_a_count_of_one_is_singular(mail_repo: Path, cli, tmp_path: Path):
    listing = tmp_path / "agents.yaml"
    listing.write_text("- {name: solo, role: r, provider: command}\n")
    assert cli("agent", "new", "--from", str(listing), cwd=mail_repo).code == 0
    assert git(mail_repo, "log", "-1", "--format=%s") == "aipass: add 1 agent"
    assert cli("send", "@api", "one", "body", cwd=mail_repo).code == 0
    assert "mail: 1 message, " in cli("report", cwd=mail_repo).out


# -- SHA-256 repositories -------------------------------------------------------------------

@pytest.fixture
def sha256_repo(tmp_path: Path, cli) -> Path:
    path = tmp_path / "sha256"
    path.mkdir()
    git(path, "init", "-q", "--object-format=sha256")
    (path / "README.md").write_text("# sha256\n")
    git(path, "add", "-A")
    git(path, "commit", "-qm", "first")
    assert cli("init", cwd=path).code == 0
    assert cli("agent", "new", "api", "--role", "r", "--provider", "command", cwd=path).code == 0
    return path


def test_a_sha256_repository_refuses_the_same_input(sha256_repo: Path, cli):
    assert len(git(sha256_repo, "rev-parse", "HEAD")) == 64
    with unchanged(sha256_repo):
        refused(cli("send", "@api", "left\u202eright", "b", cwd=sha256_repo), "U+202E")
        refused(cli("send", "@api", "s", f"key {AWS_KEY}", cwd=sha256_repo), "AWS")
        refused(cli("read", "--", "a\ninfo HEAD", cwd=sha256_repo), "id")
    mid = message_id(cli, sha256_repo, "@api", "hello", "body \x1b[2J")
    shown = cli("read", mid, cwd=sha256_repo, env={"AIPASS_AGENT": "api"})
    assert shown.code == 0 and ESC not in shown.out
    assert cli("audit", cwd=sha256_repo).code == 0


def test_a_sha256_pre_commit_hook_reads_newline_names_safely(sha256_repo: Path):
    (sha256_repo / "a\ncontents HEAD:README.md").write_text("x\n")
    (sha256_repo / "creds.txt").write_text(f"key = {AWS_KEY}\n")
    git(sha256_repo, "add", "-A")
    result = run(sha256_repo, "commit", "-qm", "leak")
    assert result.returncode == 1 and b"creds.txt:1: looks like an AWS access key" in result.stderr


# -- the commit-msg hook's shell prefilter --------------------------------------------------

FRAGMENTS = [AWS_KEY, "ASIA" + "Q" * 16, "ghp_" + "x" * 36, "github_pat_" + "y" * 40, "sk-ant-" + "z" * 24,
             "sk-proj-" + "k" * 32, "AIza" + "0" * 35, "xoxb-1234567890ab", "-----BEGIN RSA PRIVATE KEY-----",
             "DB_PASSWORD=", "api-key: ", "Access_Key = ", "client_secret='", "PWD=", "my_credentials: ",
             "Xk29vLq7Ztp4RmW8sYc1", "q9Zr7TmX2kLp4VwB8nYc3HsD", " ", "\n", "=", ":", '"', "fix: ", "key"]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=8), max_size=8).map("".join))
def test_every_message_the_secret_check_flags_passes_the_hook_prefilter(text):
    import re

    from aipass_git.core import secrets

    if secrets.find(text):
        assert re.search(secrets.ANCHORS, text, re.IGNORECASE), text


def test_the_event_log_shows_what_a_run_printed_escaped(mail_repo: Path, cli):
    from aipass_git.core.repo import discover
    from aipass_git.dispatch.runtime import Runtime

    # a watcher's error line carries what a provider printed: anything at all
    Runtime(discover(mail_repo)).log("error", "api", line="boom \x1b]0;pwned\x07\x1b[2J")
    shown = cli("log", cwd=mail_repo)
    assert shown.code == 0 and ESC not in shown.out and "boom \\x1b]0;pwned\\x07\\x1b[2J" in shown.out
    raw = json.loads(cli("log", "--json", cwd=mail_repo).out.splitlines()[-1])
    assert raw["line"] == "boom \x1b]0;pwned\x07\x1b[2J"  # --json keeps the bytes as they were
