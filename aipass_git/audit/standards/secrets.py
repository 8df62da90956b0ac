"""Secrets: credentials in .aipass files, in mail on mailbox refs, in files under review,
in commit messages. A secret someone let through on purpose (`--allow-secret`, recorded
with the message or the commit) is not reported again."""

from __future__ import annotations

import json

from aipass_git.audit.checked import Checked
from aipass_git.audit.engine import Problem, standard
from aipass_git.core import git, secrets
from aipass_git.core.text import article

HINT = "remove it, rotate the credential, and keep secrets in a vault or the environment"


def _scan(ctx, rel: str):
    text = ctx.text(rel)
    if text is None:
        return
    for number, line in enumerate(text.splitlines(), 1):
        for kind in secrets.find(line):
            yield Problem(rel, f"looks like {article(kind)}", HINT, line=number)


@standard("secrets.aipass", "no credentials in .aipass files (memory, passports, config)")
def in_aipass(ctx):
    for rel in ctx.aipass_files():
        yield from _scan(ctx, rel)


@standard("secrets.files", "no credentials in the files under review", scope="file")
def in_files(ctx):
    for rel in ctx.files:
        if not rel.startswith(".aipass/"):
            yield from _scan(ctx, rel)


@standard("secrets.mail", "no credentials in mail bodies on mailbox refs")
def in_mail(ctx):
    from aipass_git.mail import mailbox  # deferred: the commit hook loads every standard; only the full audit reads mail
    from aipass_git.store.events import EventStore

    checked = Checked(ctx.repo, "secrets.mail")
    with EventStore(ctx.repo) as store:
        # clean at the tip it was checked at: only the message files added since are read
        # (delivered messages never change)
        spans = checked.moved(store, mailbox.tips(ctx.repo.root))
        changes = mailbox.folder_changes(store, spans)
        added = {owner: [oid for before, now in changes[owner] for name, (_, oid) in sorted(now.items())
                         if name.endswith(".json") and (before or {}).get(name, (None, None))[1] != oid]
                 for owner in spans}
        for owner in sorted(spans):
            ref = mailbox.ref_for(owner)
            leaks = 0
            # a mailbox's new messages at a time: after a fill, all mail at once would be in memory
            for message in map(json.loads, store.blobs(added[owner])):
                if message["meta"].get("allowed_secrets"):
                    continue
                kinds = secrets.find(message["subject"] + "\n" + message["body"])
                if kinds:
                    leaks += 1
                    yield Problem(f"{ref}:{mailbox.message_path(message['id'])}",
                                  f"message {message['id']} from @{message['from']} looks like it holds {article(kinds[0])}",
                                  "rotate the credential; mail history keeps it, so treat it as leaked")
            checked.mark(owner, None if leaks else spans[owner][1])
    checked.save()


RECENT_COMMITS = 500  # commit messages reviewed by a full audit: the latest, where a leak is news


@standard("secrets.commits", "no credentials in the messages of the latest commits")
def in_commit_messages(ctx):
    for commit, body in git.log(ctx.repo.root, ["HEAD"], ["%H", "%B"], limit=RECENT_COMMITS):
        if "Aipass-Allowed-Secret:" in body:
            continue
        kinds = secrets.find(body)
        if kinds:
            yield Problem(f"commit {commit[:10]}", f"its message looks like it holds {article(kinds[0])}",
                          "rotate the credential; the message stays in history unless it is rewritten")


STANDARDS = [in_aipass, in_files, in_mail, in_commit_messages]
