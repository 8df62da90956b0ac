"""Mail between agents and the human, kept on mailbox refs (`refs/aipass/mail/<owner>`).

The Python API has the verbs of the command line. Each call opens the repository, works
out who is speaking (`AIPASS_AGENT`, the desk, or the human) and closes it again; for
many calls in a row, open one `PostOffice` and call its methods, which keeps git's
helper processes alive between calls.

    from aipass_git import mail
    [m] = mail.send(["@quality"], "review the API", "see src/api")
    mail.inbox("@quality")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def post_office(path: str | Path | None = None, *, act_as: str | None = None):
    from aipass_git.core.repo import discover  # deferred: every mail module imports this package first; postoffice imports them
    from aipass_git.mail.postoffice import PostOffice  # deferred: every mail module imports this package first; postoffice imports them

    return PostOffice(discover(path), act_as=act_as)


def send(to: list[str], subject: str, body: str, *, path=None, act_as=None, **options: Any) -> list[dict]:
    with post_office(path, act_as=act_as) as po:
        return po.send(to, subject, body, **options)


def inbox(owner: str | None = None, *, path=None, act_as=None, **filters: Any) -> list[dict]:
    with post_office(path, act_as=act_as) as po:
        return po.inbox(owner, **filters)


def read(message_id: str, *, path=None, act_as=None) -> dict:
    with post_office(path, act_as=act_as) as po:
        return po.read(message_id)


def reply(message_id: str, body: str, *, path=None, act_as=None, allow_secret: bool = False) -> dict:
    with post_office(path, act_as=act_as) as po:
        return po.reply(message_id, body, allow_secret=allow_secret)


def done(*message_ids: str, path=None, act_as=None) -> list[dict]:
    with post_office(path, act_as=act_as) as po:
        return po.mark(list(message_ids), "done")


def thread(message_id: str, *, path=None) -> list[dict]:
    with post_office(path) as po:
        return po.thread(message_id)


def log(owner: str | None = None, *, path=None, limit: int | None = None) -> list:
    with post_office(path) as po:
        return po.log(owner, limit)
