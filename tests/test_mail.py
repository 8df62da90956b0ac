"""Mail through the command line and the API, on real mailbox refs."""

import json
from pathlib import Path

import pytest
from conftest import git, make_desk

from aipass_git import mail
from aipass_git.mail import mailbox, message as msg


def refs_state(repo: Path) -> str:
    return git(repo, "for-each-ref", "refs/aipass/")


def send(cli, repo, *args, **kw):
    result = cli("send", *args, "--json", cwd=repo, **kw)
    assert result.code == 0, result.err
    return json.loads(result.out)["messages"]


def inbox(cli, repo, *args, **kw):
    result = cli("inbox", *args, "--json", cwd=repo, **kw)
    assert result.code == 0, result.err
    return json.loads(result.out)["messages"]


AS_API = {"AIPASS_AGENT": "api"}


def test_send_is_a_commit_on_the_recipients_mailbox(mail_repo: Path, cli):
    [m] = send(cli, mail_repo, "@api", "review the parser", "see src/app.py")
    ref = "refs/aipass/mail/api"
    assert git(mail_repo, "log", "--format=%s", ref) == "mail: human -> api: review the parser"
    assert git(mail_repo, "log", "-1", "--format=%an <%ae>", ref) == "Test Human <human@example.invalid>"
    trailers = git(mail_repo, "log", "-1", "--format=%(trailers:only,unfold)", ref)
    assert f"Aipass-Message: {m['id']}" in trailers and "Aipass-Event: deliver" in trailers
    stored = json.loads(git(mail_repo, "show", f"{ref}:{mailbox.message_path(m['id'])}"))
    assert stored == {k: v for k, v in m.items()}
    assert msg.is_valid(stored) and stored["meta"] == {"sender_name": "Test Human"}
    assert stored["thread"] == stored["id"] and stored["kind"] == "mail"
    # the work tree and the branches are untouched: mail lives on its own refs only
    assert git(mail_repo, "status", "--porcelain") == ""
    assert git(mail_repo, "rev-list", "--count", "HEAD") == "5"


def test_inbox_lists_unread_first_then_newest(mail_repo: Path, cli):
    ids = [send(cli, mail_repo, "@api", f"task {i}", "body")[0]["id"] for i in range(4)]
    assert cli("read", ids[3], cwd=mail_repo, env=AS_API).code == 0
    assert cli("done", ids[0], cwd=mail_repo, env=AS_API).code == 0
    listed = inbox(cli, mail_repo, env=AS_API)
    assert [l["id"] for l in listed] == [ids[2], ids[1], ids[3]]
    assert [l["status"] for l in listed] == ["new", "new", "read"]
    everything = inbox(cli, mail_repo, "--all", env=AS_API)
    assert [l["id"] for l in everything] == [ids[2], ids[1], ids[3], ids[0]]
    assert inbox(cli, mail_repo, "@api") == listed  # anyone may look at a mailbox
    table = cli("inbox", cwd=mail_repo, env=AS_API)
    assert table.out.splitlines()[0].split()[:3] == ["ID", "STATUS", "FROM"] and "task 2" in table.out


def test_inbox_filters_by_sender_and_thread(mail_repo: Path, cli):
    [a] = send(cli, mail_repo, "@api", "from human", "x")
    [b] = send(cli, mail_repo, "@api", "from docs", "y", env={"AIPASS_AGENT": "docs"})
    assert [l["id"] for l in inbox(cli, mail_repo, "@api", "--from", "@docs")] == [b["id"]]
    assert [l["id"] for l in inbox(cli, mail_repo, "@api", "--thread", a["id"][:14])] == [a["id"]]


def test_read_shows_the_message_and_marks_it_read_once(mail_repo: Path, cli):
    [m] = send(cli, mail_repo, "@api", "hello", "line one\nline two")
    shown = cli("read", m["id"][:13], cwd=mail_repo, env=AS_API)
    assert shown.code == 0
    assert "from:    @human (Test Human)" in shown.out and "line one\nline two" in shown.out
    assert "status:  read" in shown.out
    count = git(mail_repo, "rev-list", "--count", "refs/aipass/mail/api")
    assert count == "2"
    assert cli("read", m["id"], cwd=mail_repo, env=AS_API).code == 0
    assert git(mail_repo, "rev-list", "--count", "refs/aipass/mail/api") == "2"  # no event for nothing


def test_reply_goes_to_the_sender_in_the_same_thread(mail_repo: Path, cli):
    [m] = send(cli, mail_repo, "@api", "question", "why?")
    replied = cli("reply", m["id"][:14], "because", "--json", cwd=mail_repo, env=AS_API)
    assert replied.code == 0, replied.err
    r = json.loads(replied.out)
    assert r["to"] == "human" and r["from"] == "api" and r["kind"] == "reply"
    assert r["thread"] == m["id"] and r["in_reply_to"] == m["id"] and r["subject"] == "Re: question"
    assert [l["status"] for l in inbox(cli, mail_repo, "--all", env=AS_API)] == ["done"]
    [got] = inbox(cli, mail_repo)
    assert got["id"] == r["id"]
    again = json.loads(cli("reply", r["id"], "thanks", "--json", cwd=mail_repo).out)
    assert again["subject"] == "Re: question" and again["to"] == "api"
    thread = json.loads(cli("thread", m["id"], "--json", cwd=mail_repo).out)["messages"]
    assert [t["body"] for t in thread] == ["why?", "because", "thanks"]
    assert [t["status"] for t in thread] == ["done", "done", "new"]


def test_done_takes_several_ids(mail_repo: Path, cli):
    ids = [send(cli, mail_repo, "@api", f"t{i}", "b")[0]["id"] for i in range(3)]
    result = cli("done", ids[0], ids[1][:15], cwd=mail_repo, env=AS_API)
    assert result.code == 0 and result.out.count("done ") == 2
    assert [l["id"] for l in inbox(cli, mail_repo, env=AS_API)] == [ids[2]]


def test_status_only_moves_forward(mail_repo: Path):
    [m] = mail.send(["@api"], "s", "b", path=mail_repo)
    mail.done(m["id"], path=mail_repo, act_as="@api")
    before = git(mail_repo, "rev-parse", "refs/aipass/mail/api")
    assert mail.read(m["id"], path=mail_repo, act_as="@api")["status"] == "done"
    assert git(mail_repo, "rev-parse", "refs/aipass/mail/api") == before


def test_mail_log_reads_the_events(mail_repo: Path, cli):
    [m] = send(cli, mail_repo, "@api", "s", "b")
    cli("read", m["id"], cwd=mail_repo, env=AS_API)
    cli("done", m["id"], cwd=mail_repo, env=AS_API)
    events = json.loads(cli("mail", "log", "@api", "--json", cwd=mail_repo).out)["events"]
    assert [e["trailers"]["Aipass-Event"] for e in events] == ["done", "read", "deliver"]
    assert {e["trailers"]["Aipass-Message"] for e in events} == {m["id"]}
    assert events[0]["author"] == "api" and events[2]["author"] == "Test Human"
    assert len(json.loads(cli("mail", "log", "@api", "-n", "1", "--json", cwd=mail_repo).out)["events"]) == 1


def test_send_to_several_and_to_all(mail_repo: Path, cli):
    sent = send(cli, mail_repo, "@api", "@docs", "@api", "sync", "b")
    assert sorted(m["to"] for m in sent) == ["api", "docs"]
    everyone = send(cli, mail_repo, "@all", "release", "today", env=AS_API)
    assert sorted(m["to"] for m in everyone) == ["devpulse", "docs", "quality"]
    refusal = cli("send", "@all", "@api", "x", "y", cwd=mail_repo)
    assert refusal.code == 2 and "@all" in refusal.err


def test_send_to_all_in_one_batch_keeps_one_commit_per_message(mail_repo: Path, cli):
    for i in range(9):
        assert cli("agent", "new", f"worker{i}", "--role", "works", cwd=mail_repo).code == 0
    sent = send(cli, mail_repo, "@all", "all hands", "now")
    assert len(sent) == 13
    for m in sent:
        ref = f"refs/aipass/mail/{m['to']}"
        assert git(mail_repo, "log", "--format=%s", ref).splitlines()[0] == f"mail: human -> {m['to']}: all hands"
        assert json.loads(git(mail_repo, "show", f"{ref}:{mailbox.message_path(m['id'])}"))["body"] == "now"
    assert "aipass-import" not in git(mail_repo, "for-each-ref")
    proc = git(mail_repo, "fsck", "--strict")
    assert "error" not in proc


def test_body_from_file_stdin_and_dash(mail_repo: Path, cli, tmp_path: Path):
    (tmp_path / "body.md").write_text("from a file ✓\n", encoding="utf-8")
    [a] = send(cli, mail_repo, "@api", "file", "--file", str(tmp_path / "body.md"))
    [b] = send(cli, mail_repo, "@api", "piped", input="from stdin\n")
    [c] = send(cli, mail_repo, "@api", "dash", "-", input="dash body")
    assert (a["body"], b["body"], c["body"]) == ("from a file ✓\n", "from stdin\n", "dash body")
    reply = json.loads(cli("reply", a["id"], "--json", cwd=mail_repo, env=AS_API, input="piped reply").out)
    assert reply["body"] == "piped reply"


@pytest.mark.parametrize("recipient", ["@../x", "@refs/heads/main", "@a b", "@x\x07y", "@nobody", "@Api", "@"])
def test_bad_recipients_are_refused_and_nothing_is_written(mail_repo: Path, cli, recipient):
    before = refs_state(mail_repo)
    result = cli("send", recipient, "subject", "body", cwd=mail_repo)
    assert result.code == 2, result.err
    assert result.err.startswith("error: ") and "hint: " in result.err
    assert refs_state(mail_repo) == before


def test_mixed_good_and_bad_recipients_write_nothing(mail_repo: Path, cli):
    before = refs_state(mail_repo)
    assert cli("send", "@api", "@nobody", "s", "b", cwd=mail_repo).code == 2
    assert refs_state(mail_repo) == before


def test_retired_recipient_is_refused(mail_repo: Path, cli):
    cli("agent", "retire", "docs", cwd=mail_repo)
    before = refs_state(mail_repo)
    result = cli("send", "@docs", "s", "b", cwd=mail_repo)
    assert result.code == 2 and "retired" in result.err
    assert refs_state(mail_repo) == before


@pytest.mark.parametrize(
    "args, words",
    [
        (["@api", "two\nlines", "b"], "line break"),
        (["@api", "x" * 201, "b"], "201 characters"),
        (["@api", "", "b"], "subject is empty"),
        (["@api", "s", "b" * (256 * 1024 + 1)], "bytes (at most 262144)"),
        (["api", "s", "b"], "no recipient"),
        (["@api"], "no subject"),
        (["@api", "s", "b", "extra"], "too many words"),
    ],
)
def test_bad_messages_are_refused(mail_repo: Path, cli, args, words):
    before = refs_state(mail_repo)
    result = cli("send", *args, cwd=mail_repo)
    assert result.code == 2 and words in result.err, result.err
    assert refs_state(mail_repo) == before


def test_text_starting_with_a_dash_comes_after_double_dash_and_a_stray_option_is_refused(mail_repo: Path, cli):
    listed = cli("send", "--json", "@api", "list", "--", "- one\n- two", cwd=mail_repo)
    assert json.loads(listed.out)["messages"][0]["body"] == "- one\n- two"
    before = refs_state(mail_repo)
    typo = cli("send", "@api", "subject", "--wiat", cwd=mail_repo)
    assert typo.code == 2 and "No such option '--wiat'" in typo.err and "hint:" in typo.err
    unquoted = cli("send", "@api", "subject", "- one", cwd=mail_repo)
    assert unquoted.code == 2 and "No such option" in unquoted.err
    assert refs_state(mail_repo) == before
    literal = cli("send", "--json", "@api", "subject", "--", "--literally", cwd=mail_repo)
    assert json.loads(literal.out)["messages"][0]["body"] == "--literally"


def test_invalid_utf8_from_a_file_is_refused(mail_repo: Path, cli, tmp_path: Path):
    (tmp_path / "bad.bin").write_bytes(b"ok \xff\xfe not text")
    before = refs_state(mail_repo)
    result = cli("send", "@api", "s", "--file", str(tmp_path / "bad.bin"), cwd=mail_repo)
    assert result.code == 2 and "not valid UTF-8 (byte 3)" in result.err
    assert refs_state(mail_repo) == before


def test_unknown_and_ambiguous_ids(mail_repo: Path, cli):
    [a] = send(cli, mail_repo, "@api", "one", "b")
    [b] = send(cli, mail_repo, "@api", "two", "b")
    before = refs_state(mail_repo)
    common = next(i for i in range(26) if a["id"][i] != b["id"][i])
    ambiguous = cli("read", a["id"][:common], cwd=mail_repo, env=AS_API)
    assert ambiguous.code == 2 and "ambiguous" in ambiguous.err
    unknown = cli("done", "0000000000", cwd=mail_repo, env=AS_API)
    assert unknown.code == 2 and "no message '0000000000'" in unknown.err
    not_an_id = cli("read", "hello!", cwd=mail_repo, env=AS_API)
    assert not_an_id.code == 2 and "not a message id" in not_an_id.err
    elsewhere = cli("read", a["id"], cwd=mail_repo, env={"AIPASS_AGENT": "docs"})
    assert elsewhere.code == 2 and "@docs's mailbox" in elsewhere.err
    assert refs_state(mail_repo) == before


# -- who is speaking -------------------------------------------------------------------


def test_aipass_agent_speaks_as_that_agent(mail_repo: Path, cli):
    [m] = send(cli, mail_repo, "@docs", "s", "b", env=AS_API)
    assert m["from"] == "api" and m["meta"] == {}
    assert git(mail_repo, "log", "-1", "--format=%an", "refs/aipass/mail/docs") == "api"


def test_the_desk_decides_who_speaks(mail_repo: Path, cli):
    desk = make_desk(mail_repo, "quality")
    [m] = send(cli, desk, "@api", "from my desk", "b", env={"AIPASS_AGENT": None})
    assert m["from"] == "quality"
    [same] = send(cli, desk, "@api", "agreeing", "b", env={"AIPASS_AGENT": "quality"})
    assert same["from"] == "quality"


def test_a_forged_identity_that_contradicts_the_desk_is_refused(mail_repo: Path, cli):
    desk = make_desk(mail_repo, "quality")
    before = refs_state(mail_repo)
    result = cli("send", "@docs", "s", "b", cwd=desk, env=AS_API)
    assert result.code == 2 and "desk of @quality" in result.err
    assert refs_state(mail_repo) == before


def test_unknown_or_retired_speakers_are_refused(mail_repo: Path, cli):
    before = refs_state(mail_repo)
    assert cli("send", "@docs", "s", "b", cwd=mail_repo, env={"AIPASS_AGENT": "ghost"}).code == 2
    cli("agent", "retire", "api", cwd=mail_repo)
    result = cli("send", "@docs", "s", "b", cwd=mail_repo, env=AS_API)
    assert result.code == 2 and "not an active agent" in result.err
    assert refs_state(mail_repo).count("refs/aipass/mail") == before.count("refs/aipass/mail")


def test_as_is_for_the_human_and_the_orchestrator_only(mail_repo: Path, cli):
    [m] = send(cli, mail_repo, "@docs", "s", "b", "--as", "@api")
    assert m["from"] == "api" and m["meta"]["sent_by"] == "human"
    ref = "refs/aipass/mail/docs"
    assert "Aipass-Sent-By: human" in git(mail_repo, "log", "-1", "--format=%(trailers)", ref)
    assert git(mail_repo, "log", "-1", "--format=%an", ref) == "Test Human"
    [o] = send(cli, mail_repo, "@docs", "s", "b", "--as", "@quality", env={"AIPASS_AGENT": "devpulse"})
    assert o["from"] == "quality" and o["meta"]["sent_by"] == "devpulse"
    shown = cli("read", o["id"][:12], "--as", "@docs", cwd=mail_repo)
    assert "from:    @quality, sent by @devpulse" in shown.out  # who acted for whom, as the commit says
    before = refs_state(mail_repo)
    refused = cli("send", "@docs", "s", "b", "--as", "@quality", cwd=mail_repo, env=AS_API)
    assert refused.code == 2 and "--as is refused for @api" in refused.err
    assert refs_state(mail_repo) == before


def test_the_human_has_a_mailbox(mail_repo: Path, cli):
    [m] = send(cli, mail_repo, "@human", "for you", "b", env=AS_API)
    assert m["to"] == "human"
    assert [l["subject"] for l in inbox(cli, mail_repo)] == ["for you"]


def test_python_api_has_the_same_verbs(mail_repo: Path):
    [m] = mail.send(["@api"], "api call", "body", path=mail_repo)
    assert [l["id"] for l in mail.inbox("@api", path=mail_repo)] == [m["id"]]
    r = mail.reply(m["id"][:14], "answer", path=mail_repo, act_as="@api")
    assert [t["id"] for t in mail.thread(r["id"], path=mail_repo)] == [m["id"], r["id"]]
    assert mail.done(r["id"], path=mail_repo)[0]["status"] == "done"
    assert [e.trailers["Aipass-Event"] for e in mail.log("@api", path=mail_repo)] == ["done", "deliver"]
