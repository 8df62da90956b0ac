"""aipass refs: well formed, consistent tip state, no leftovers of interrupted batches."""

from __future__ import annotations

from aipass_git.audit.checked import Checked
from aipass_git.audit.engine import Problem, standard
from aipass_git.core import git, ids, names

KINDS = ("mail", "prs", "plans", "claims")


@standard("refs.well-formed", "refs under refs/aipass/ are mail/<agent>, prs/<id>, plans/<id> or claims/<agent> and point at commits")
def well_formed(ctx):
    for ref, kind in ctx.aipass_refs:
        parts = ref.split("/")
        hint = "delete it with: git update-ref -d " + ref
        if len(parts) != 4 or parts[2] not in KINDS:
            yield Problem(ref, f"not an aipass ref kind (expected refs/aipass/{{{'|'.join(KINDS)}}}/<name>)", hint)
        elif parts[2] in ("mail", "claims") and not (names.is_valid(parts[3]) or parts[3] == "human"):
            yield Problem(ref, f"{'mailbox' if parts[2] == 'mail' else 'claims'} of something that is not an agent name", hint)
        elif parts[2] in ("prs", "plans") and not ids.is_id(parts[3]):
            yield Problem(ref, "not named by an aipass id", hint)
        elif kind != "commit":
            yield Problem(ref, f"points at a {kind}, not an event commit", hint)


@standard("refs.mailbox-state", "each mailbox's tip holds every message its index lists, and no other")
def mailbox_state(ctx):
    from aipass_git.mail import mailbox  # deferred: the commit hook loads every standard; only the full audit reads mail
    from aipass_git.store.events import EventStore

    checked = Checked(ctx.repo, "refs.mailbox-state")
    with EventStore(ctx.repo) as store:
        # a mailbox consistent at the tip it was checked at needs only its folders that changed since
        spans = checked.moved(store, mailbox.tips(ctx.repo.root))
        changes = mailbox.folder_changes(store, spans)
        for owner in sorted(spans):
            folders = [now for _, now in changes[owner]]
            files = set().union(*map(mailbox.file_ids, folders))
            indexed = {line["id"] for lines in mailbox.index_lines(store, folders) for line in lines}
            ref = mailbox.ref_for(owner)
            for mid in sorted(indexed - files):
                yield Problem(ref, f"index lists {mid} but its message file is missing", "the ref was written outside aipass; restore it from a clone")
            for mid in sorted(files - indexed):
                yield Problem(ref, f"message {mid} is not in the index", "the ref was written outside aipass; restore it from a clone")
            checked.mark(owner, spans[owner][1] if files == indexed else None)
    checked.save()


@standard("refs.signed-mail", "every message in a mailbox was delivered by its sender, as a signature proves")
def signed_mail(ctx):
    from aipass_git.mail import mailbox  # deferred: see mailbox_state
    from aipass_git.mail.verified import Trust
    from aipass_git.store.events import EventStore

    with EventStore(ctx.repo) as store:
        trust = Trust(store, ctx.config)
        for owner, found in sorted(trust.unverified_all().items()):
            ref = mailbox.ref_for(owner)
            for mid, why in sorted(found.items()):
                # with `trust: any` the repository chose to flag, not refuse
                yield Problem(ref, f"message {mid} is unverified: {why}",
                              "someone wrote this ref without the sender's key; do not act on it, and find who did "
                              "(git log --show-signature " + ref + ")",
                              severity=None if trust.enforced else "warning")


RECORDS = ["refs/aipass/prs/", "refs/aipass/plans/"]


@standard("refs.signed-records", "every event of a PR or plan record is signed by a key trusted for its committer")
def signed_records(ctx):
    from aipass_git.store.events import EventStore  # deferred: see mailbox_state
    from aipass_git.store.verify import roster_at, unproven_refs

    if not any(ref.startswith(tuple(RECORDS)) for ref, _ in ctx.aipass_refs):
        return
    with EventStore(ctx.repo) as store:
        roster = roster_at(store, ctx.config.base_branch)
        if roster.blob_id is None:
            return  # a repository from before signed events
        found = unproven_refs(store, roster, RECORDS)
    enforced = ctx.config.trust == "signed"
    for ref, (commit, verdict) in sorted(found.items()):
        yield Problem(ref, f"event {commit[:10]} is {verdict.reason}" + (": nothing acts on this record" if enforced else ""),
                      "someone wrote this ref without a trusted key; find who (git log --show-signature " + ref + ")",
                      severity=None if enforced else "warning")


@standard("refs.leftover-batches", "no scratch refs of interrupted bulk sends remain", severity="warning")
def leftover_batches(ctx):
    for ref, _ in git.list_refs(ctx.repo.root, "refs/aipass-import/"):
        yield Problem(ref, "scratch ref of a bulk send that is running or was killed; the next send finishes "
                           "a killed one (delivering it to every recipient) and removes this ref",
                      "or run: git aipass doctor --fix")


STANDARDS = [well_formed, mailbox_state, signed_mail, signed_records, leftover_batches]
