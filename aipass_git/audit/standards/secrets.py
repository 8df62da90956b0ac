"""Secrets: credentials in .aipass files, in mail on mailbox refs, in files under review."""

from __future__ import annotations

from aipass_git.audit.engine import Problem, standard
from aipass_git.core import git, secrets

HINT = "remove it, rotate the credential, and keep secrets in a vault or the environment"


def _scan(ctx, rel: str):
    text = ctx.text(rel)
    if text is None:
        return
    for number, line in enumerate(text.splitlines(), 1):
        for kind in secrets.find(line):
            yield Problem(rel, f"looks like a {kind}", HINT, line=number)


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

    with EventStore(ctx.repo) as store:
        for ref, _ in git.list_refs(ctx.repo.root, mailbox.NAMESPACE):
            owner = ref[len(mailbox.NAMESPACE):]
            reader = mailbox.MailboxReader(store, owner)
            for message in reader.messages([l["id"] for l in reader.summaries()]):
                kinds = secrets.find(message["subject"] + "\n" + message["body"])
                if kinds:
                    yield Problem(f"{ref}:{mailbox.message_path(message['id'])}",
                                  f"message {message['id']} from @{message['from']} looks like it holds a {kinds[0]}",
                                  "rotate the credential; mail history keeps it, so treat it as leaked")


STANDARDS = [in_aipass, in_files, in_mail]
