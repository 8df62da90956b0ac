"""The mail verbs: send, inbox, read, reply, done, thread, log.

A `PostOffice` is opened on a session (or a repository, whose session it opens) and
speaks as the session's speaker; the CLI only parses arguments and prints what these
methods return.
"""

from __future__ import annotations

from typing import Any

from aipass_git.agents.session import Session
from aipass_git.core.program import kick_triggers
from aipass_git.core import clock, ids, names, secrets
from aipass_git.core.errors import InvalidNameError, RefusedError, UnknownMessageError
from aipass_git.core.repo import Repo
from aipass_git.mail import mailbox, message as msg
from aipass_git.mail.summary_index import SummaryIndex
from aipass_git.mail.verified import Trust
from aipass_git.store.events import EventStore, HistoryEntry

ALL = "all"


class PostOffice:
    def __init__(self, where: Repo | Session, *, act_as: str | None = None) -> None:
        self.session = where if isinstance(where, Session) else Session.open(where, act_as=act_as)
        self.repo = self.session.repo
        self.config = self.session.config
        self.registry = self.session.registry
        self.speaker = self.session.speaker
        self.store = EventStore(self.repo)
        self._trust: Trust | None = None
        self._index: SummaryIndex | None = None

    def __enter__(self) -> "PostOffice":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._index is not None:
            self._index.close()
        self.store.close()

    # -- addresses ----------------------------------------------------------------------

    def address(self, raw: str) -> str:
        """The mailbox owner RAW names: an active agent or the human."""
        name = names.strip_at(raw)
        if name == msg.HUMAN:
            return name
        if name == ALL:
            raise RefusedError("@all cannot be combined with other recipients", "send to @all alone")
        try:
            return self.registry.resolve(name).name
        except InvalidNameError as exc:
            raise InvalidNameError(f"recipient: {exc.message}", exc.hint) from None

    def recipients(self, raw: list[str]) -> list[str]:
        if not raw:
            raise RefusedError("no recipient given", "name one or more: @agent, @human or @all")
        if len(raw) == 1 and names.strip_at(raw[0]) == ALL:
            everyone = [a.name for a in self.registry.all() if a.name != self.speaker.name]
            if not everyone:
                raise RefusedError("@all has nobody to reach: there are no other active agents", "create one with: git aipass agent new")
            return everyone
        return list(dict.fromkeys(self.address(r) for r in raw))

    def _owner(self, raw: str | None) -> str:
        return self.speaker.name if raw is None else self.address_any(raw)

    def address_any(self, raw: str) -> str:
        """A mailbox to look at: any agent, retired ones included, or the human."""
        name = names.strip_at(raw)
        if name == msg.HUMAN:
            return name
        return self.registry.get(names.normalize(name)).name

    # -- writing ------------------------------------------------------------------------

    def check_text(self, subject: str, body: str, *, allow_secret: bool = False) -> tuple[str, str, list[str]]:
        """(subject, body, kinds of secret let through) as `send` would deliver them, or the
        refusal; callers with more to check (a dispatch's provider) ask this first, so a bad
        message is what the user hears about."""
        limits = self.config.limits
        subject = msg.check_subject(subject, limits["subject_max_chars"])
        body = msg.check_body(body, limits["body_max_bytes"])
        return subject, body, secrets.check("the message", subject, body, allow=allow_secret)

    def send(
        self,
        to: list[str],
        subject: str,
        body: str,
        *,
        kind: str = "mail",
        thread: str | None = None,
        in_reply_to: str | None = None,
        meta: dict[str, Any] | None = None,
        allow_secret: bool = False,
    ) -> list[dict[str, Any]]:
        """Deliver one message per recipient; every check happens before anything is written.
        A message that looks like it holds a secret is refused unless ALLOW_SECRET, which
        the message and its commits record."""
        subject, body, allowed = self.check_text(subject, body, allow_secret=allow_secret)
        owners = self.recipients(to)
        meta = dict(meta or {})
        trailers = {}
        if allowed:
            meta["allowed_secrets"] = allowed
            trailers["Aipass-Allowed-Secret"] = ", ".join(allowed)
        if self.speaker.is_human:
            meta.setdefault("sender_name", self.speaker.author.name)
        if self.speaker.real:
            meta["sent_by"] = self.speaker.real
            trailers["Aipass-Sent-By"] = self.speaker.real
        now = clock.utc_now()  # one send, one time: its copies differ only in id and recipient
        messages = [
            msg.build(sender=self.speaker.name, recipient=owner, subject=subject, body=body, kind=kind,
                      thread=thread, in_reply_to=in_reply_to, meta=meta, created=now)
            for owner in owners
        ]
        events = [(mailbox.ref_for(m["to"]), mailbox.deliver(m, self.speaker.author, trailers, encoded=data))
                  for m, data in zip(messages, msg.encode_many(messages))]
        if len(events) > 1:  # every recipient gets it, or none does (one journalled transaction)
            self.store.append_many(events, reads={mailbox.ref_for(m["to"]): mailbox.delivery_reads(m) for m in messages})
        else:
            for ref, apply in events:
                self.store.append(ref, apply)
        kick_triggers(self.repo.root, self.repo.runtime_dir)
        return messages

    def mark(self, ids: list[str], status: str) -> list[dict[str, Any]]:
        """Move messages of the speaker's mailbox forward to STATUS; returns their summaries."""
        box = mailbox.MailboxReader(self.store, self.speaker.name)
        found = [self.find(box, raw) for raw in ids]
        trailers = {"Aipass-Sent-By": self.speaker.real} if self.speaker.real else None
        for line in found:
            self.store.append(box.ref, mailbox.mark(box.owner, line["id"], status, self.speaker.author, trailers))
            line["status"] = msg.later_status(line["status"], status)
        return found

    def read(self, raw_id: str) -> dict[str, Any]:
        """The full message, marked read."""
        box = mailbox.MailboxReader(self.store, self.speaker.name)
        line = self.find(box, raw_id)
        full = box.message(line["id"])
        self.mark([line["id"]], "read")
        return self.trust.mark(box.owner, [{**full, "status": msg.later_status(line["status"], "read")}])[0]

    def reply(self, raw_id: str, body: str, *, allow_secret: bool = False) -> dict[str, Any]:
        """Answer a message of the speaker's mailbox: to its sender, same thread; the original is done."""
        box = mailbox.MailboxReader(self.store, self.speaker.name)
        original = self.find(box, raw_id)
        sender = original["from"]
        if sender != msg.HUMAN:
            self.registry.resolve(sender)  # a retired sender cannot be answered
        subject = original["subject"]
        if not subject.lower().startswith("re: "):
            subject = f"Re: {subject}"
        subject = subject[: self.config.limits["subject_max_chars"]]
        [sent] = self.send([sender], subject, body, kind="reply", thread=original["thread"], in_reply_to=original["id"],
                           allow_secret=allow_secret)
        self.mark([original["id"]], "done")
        return sent

    # -- reading ------------------------------------------------------------------------

    def inbox(
        self,
        owner: str | None = None,
        *,
        include_done: bool = False,
        sender: str | None = None,
        thread: str | None = None,
    ) -> list[dict[str, Any]]:
        """Summaries, unread first, then newest first."""
        box = mailbox.MailboxReader(self.store, self._owner(owner))
        lines = box.summaries()
        if not include_done:
            lines = [l for l in lines if l["status"] != "done"]
        if sender is not None:
            who = self.address_any(sender)
            lines = [l for l in lines if l["from"] == who]
        if thread is not None:
            thread_id = self._find_any(thread)["thread"]
            lines = [l for l in lines if l["thread"] == thread_id]
        lines.sort(key=lambda l: l["id"], reverse=True)
        lines.sort(key=lambda l: l["status"] != "new")  # stable: unread first, newest first
        return self.trust.mark(box.owner, lines)

    def thread(self, raw_id: str) -> list[dict[str, Any]]:
        """Every message of the thread RAW_ID belongs to, across all mailboxes, oldest first."""
        thread_id = self._find_any(raw_id)["thread"]
        found: list[dict[str, Any]] = []
        for owner, lines in self.index.in_thread(thread_id).items():
            box = mailbox.MailboxReader(self.store, owner)
            status = {l["id"]: l["status"] for l in lines}
            found += self.trust.mark(owner, [{**full, "status": status[full["id"]]}
                                             for full in box.messages([l["id"] for l in lines])])
        found.sort(key=lambda m: m["id"])
        return found

    @property
    def trust(self) -> Trust:
        """Which messages their senders' signatures prove (mail/verified.py)."""
        if self._trust is None:
            self._trust = Trust(self.store, self.config)
        return self._trust

    def log(self, owner: str | None = None, limit: int | None = None) -> list[HistoryEntry]:
        return self.store.history(mailbox.ref_for(self._owner(owner)), limit)

    # -- ids ----------------------------------------------------------------------------

    def find(self, box: mailbox.MailboxReader, raw_id: str) -> dict[str, Any]:
        prefix = _clean_id(raw_id)
        if len(prefix) == 26:
            line = box.summary(prefix)
            matches = [line] if line else []
        else:
            matches = [l for l in box.summaries() if l["id"].startswith(prefix)]
        return _one(matches, raw_id, f"@{box.owner}'s mailbox")

    def _find_any(self, raw_id: str) -> dict[str, Any]:
        matches = [line for _, line in self.index.with_prefix(_clean_id(raw_id))]
        return _one(matches, raw_id, "any mailbox")

    @property
    def index(self) -> SummaryIndex:
        """Every mailbox's summaries, derived (summary_index.py): across-mailbox lookups."""
        if self._index is None:
            self._index = SummaryIndex(self.store)
        return self._index


def _clean_id(raw: str) -> str:
    prefix = raw.strip().lower()
    if not prefix or len(prefix) > 26 or any(c not in ids.ALPHABET for c in prefix):
        raise RefusedError(f"{raw!r} is not a message id", "ids are 26 characters of 0-9 a-z; any unique prefix works")
    return prefix


def _one(matches: list[dict[str, Any]], raw_id: str, where: str) -> dict[str, Any]:
    if not matches:
        raise UnknownMessageError(f"no message {raw_id!r} in {where}", "list them with: git aipass inbox --all")
    if len({m["id"] for m in matches}) > 1:
        shown = ", ".join(sorted({m["id"] for m in matches})[:5])
        raise RefusedError(f"message id {raw_id!r} is ambiguous ({shown})", "give more characters of the id")
    return matches[0]
