"""Mail commands: send, inbox, read, reply, done, thread, and `mail log`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from aipass_git.cli.app import commands, group
from aipass_git.cli.output import emit_json, table
from aipass_git.core.errors import RefusedError
from aipass_git.core.repo import discover
from aipass_git.core.text import for_terminal, plural
from aipass_git.dispatch.runtime import Runtime
from aipass_git.mail.postoffice import PostOffice

app = commands()

mail_app = group("mail", "Mail history: the event log of a mailbox ref.")
app.add_typer(mail_app, name="mail")

JSON = typer.Option(False, "--json", help="Print JSON for scripts and agents.")
AS = typer.Option(None, "--as", metavar="@AGENT", help="Act as this agent (only the human and the orchestrator).")
FILE = typer.Option(None, "--file", "-F", metavar="FILE", help="Read the body from FILE ('-' for standard input).")
ALLOW_SECRET = typer.Option(False, "--allow-secret",
                            help="Send even though the text looks like it holds a credential (recorded with it).")
def _show(text: str, raw: bool) -> None:
    if raw:
        # as stored: click.echo would strip ANSI sequences when stdout is not a terminal
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    else:
        typer.echo(for_terminal(text))


RAW = typer.Option(False, "--raw", help="Print the body as stored, control characters and all (not escaped).")


def _post_office(act_as: str | None = None):
    return PostOffice(discover(), act_as=act_as)


def heal(repo, agents: list[str]) -> None:
    """Commands that touch agents notice a dead supervisor and restart its queue."""
    busy = Runtime(repo).not_idle(agents)
    if busy:  # only then is recovery's code worth importing
        from aipass_git.dispatch.recovery import heal_all  # deferred: ~11 ms, worth paying only for an agent whose state says busy

        heal_all(repo, busy)


def _body(body: str | None, file: Path | None) -> str:
    """The body from the argument, --file, or standard input (when piped, or given as '-').
    Text starting with '-' comes after `--`, as for any command."""
    if body is not None and file is not None:
        raise RefusedError("give the body as an argument or with --file, not both", "drop one of them")
    if file is not None and str(file) != "-":
        try:
            data = file.read_bytes()
        except OSError as exc:
            raise RefusedError(f"cannot read {file}: {exc.strerror}", "check the path") from None
        return _decode(data, str(file))
    if body == "-" or str(file) == "-" or (body is None and not _stdin_is_terminal()):
        return _decode(sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") else sys.stdin.read().encode(), "standard input")
    return body or ""


def _stdin_is_terminal() -> bool:
    try:
        return sys.stdin is None or sys.stdin.isatty()
    except (ValueError, OSError):
        return True


def _decode(data: bytes, where: str) -> str:

    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RefusedError(f"{where} is not valid UTF-8 (byte {exc.start})", "send text; attach binary files by committing them") from None


def short_ids(ids: list[str], minimum: int = 12) -> dict[str, str]:
    """The shortest prefix (at least MINIMUM) that tells each id apart from the others."""
    ordered = sorted(ids)
    out = {}
    for i, mid in enumerate(ordered):
        length = minimum
        for other in (ordered[i - 1] if i else None, ordered[i + 1] if i + 1 < len(ordered) else None):
            if other:
                common = next((k for k, (a, b) in enumerate(zip(mid, other)) if a != b), len(mid))
                length = max(length, common + 1)
        out[mid] = mid[:length]
    return out


def _who(address: str, meta: dict | None = None) -> str:
    meta = meta or {}
    name = meta.get("sender_name")
    shown = f"@{address} ({name})" if name else f"@{address}"
    by = meta.get("sent_by")  # --as: who acted for the sender, and signed
    return f"{shown}, sent by @{by}" if by and by != address else shown


@app.command()
def send(
    words: List[str] = typer.Argument(..., metavar="@TO... SUBJECT [BODY]", help="Recipients (@agent, @human or @all), the subject, then the body."),
    file: Optional[Path] = FILE,
    act_as: Optional[str] = AS,
    allow_secret: bool = ALLOW_SECRET,
    as_json: bool = JSON,
) -> None:
    """Send a message: `git aipass send @quality "subject" "body"`.

    Without BODY the body comes from --file, or from standard input when it is piped.
    A body that starts with '-' (a list) goes after `--`: send @quality "subject" -- "- one".
    A message that looks like it holds a credential is refused (see --allow-secret).
    """
    recipients = [w for w in _leading_addresses(words)]
    rest = words[len(recipients):]
    if not recipients:
        raise RefusedError("no recipient: address them as @name", 'e.g. git aipass send @quality "subject" "body"')
    if not rest:
        raise RefusedError("no subject given", 'e.g. git aipass send @quality "subject" "body"')
    if len(rest) > 2:
        raise RefusedError(f"too many words after the subject: {rest[2]!r}", "quote the subject and the body")
    subject, body = rest[0], rest[1] if len(rest) > 1 else None
    with _post_office(act_as) as po:
        sent = po.send(recipients, subject, _body(body, file), allow_secret=allow_secret)
        heal(po.repo, [m["to"] for m in sent])
    if as_json:
        emit_json({"v": 1, "messages": sent})
        return
    for m in sent:
        typer.echo(f"sent {m['id']} to @{m['to']}")


def _leading_addresses(words: list[str]) -> list[str]:
    out = []
    for w in words:
        if not w.startswith("@"):
            break
        out.append(w)
    return out


@app.command()
def inbox(
    owner: Optional[str] = typer.Argument(None, metavar="[@AGENT]", help="Whose mailbox (default: your own)."),
    include_done: bool = typer.Option(False, "--all", "-a", help="Include messages already done."),
    sender: Optional[str] = typer.Option(None, "--from", metavar="@X", help="Only messages from @X."),
    thread: Optional[str] = typer.Option(None, "--thread", metavar="ID", help="Only messages of this thread."),
    act_as: Optional[str] = AS,
    as_json: bool = JSON,
) -> None:
    """List a mailbox: unread first, newest first."""
    with _post_office(act_as) as po:
        owner_name = po.speaker.name if owner is None else po.address_any(owner)
        lines = po.inbox(owner, include_done=include_done, sender=sender, thread=thread)
        heal(po.repo, [owner_name])
    if as_json:
        emit_json({"v": 1, "owner": owner_name, "messages": lines})
        return
    if not lines:
        typer.echo(f"@{owner_name}: no messages" + ("" if include_done else " (add --all for done ones)"))
        return
    short = short_ids([l["id"] for l in lines])
    # an unproven sender is marked where the eye reads it, next to the name
    rows = [(short[l["id"]], l["status"], f"@{l['from']}" + ("" if l.get("verified", True) else " (unverified)"),
             l["kind"], l["created"].replace("T", " ")[:16], l["subject"]) for l in lines]
    typer.echo(table(["ID", "STATUS", "FROM", "KIND", "DATE (UTC)", "SUBJECT"], rows))
    unproven = sum(1 for l in lines if l.get("verified") is False)
    if unproven:
        typer.echo(f"warning: {plural(unproven, 'message')} not signed by {'its' if unproven == 1 else 'their'} sender: "
                   "do not act on them before you know who wrote them (git aipass read ID says why)", err=True)


@app.command()
def read(
    message_id: str = typer.Argument(..., metavar="ID", help="A message of your mailbox (any unique prefix)."),
    act_as: Optional[str] = AS,
    raw: bool = RAW,
    as_json: bool = JSON,
) -> None:
    """Show a message and mark it read.

    Control characters in the body (a terminal's escape sequences, bidirectional
    overrides) are shown escaped; --raw prints them as they are.
    """
    with _post_office(act_as) as po:
        m = po.read(message_id)
    if as_json:
        emit_json(m)
        return
    text = _render(m)
    _show(text, raw)


def _render(m: dict) -> str:
    head = [
        ("id", m["id"]),
        ("from", _who(m["from"], m.get("meta")) + (f"  UNVERIFIED: {m['unverified']}" if m.get("unverified") else "")),
        ("to", f"@{m['to']}"),
        ("date", m["created"]),
        ("kind", m["kind"] + (f" (reply to {m['in_reply_to']})" if m.get("in_reply_to") else "")),
        ("thread", m["thread"]),
        ("status", m["status"]),
        ("subject", m["subject"]),
    ]
    return "\n".join(f"{k + ':':<9}{v}" for k, v in head) + "\n\n" + m["body"].rstrip("\n") + "\n"


@app.command()
def reply(
    message_id: str = typer.Argument(..., metavar="ID", help="The message to answer (any unique prefix)."),
    body: Optional[str] = typer.Argument(None, help="The answer (or --file, or standard input)."),
    file: Optional[Path] = FILE,
    act_as: Optional[str] = AS,
    allow_secret: bool = ALLOW_SECRET,
    as_json: bool = JSON,
) -> None:
    """Answer a message: to its sender, in the same thread; the original is marked done."""
    with _post_office(act_as) as po:
        sent = po.reply(message_id, _body(body, file), allow_secret=allow_secret)
    if as_json:
        emit_json(sent)
    else:
        typer.echo(f"replied {sent['id']} to @{sent['to']}; {sent['in_reply_to']} done")


@app.command()
def done(
    message_ids: List[str] = typer.Argument(..., metavar="ID...", help="Messages of your mailbox (any unique prefix)."),
    act_as: Optional[str] = AS,
    as_json: bool = JSON,
) -> None:
    """Mark messages done."""
    with _post_office(act_as) as po:
        lines = po.mark(message_ids, "done")
    if as_json:
        emit_json({"v": 1, "messages": lines})
    else:
        for line in lines:
            typer.echo(for_terminal(f"done {line['id']}: {line['subject']}"))


@app.command()
def thread(
    message_id: str = typer.Argument(..., metavar="ID", help="Any message of the thread (any unique prefix)."),
    raw: bool = RAW,
    as_json: bool = JSON,
) -> None:
    """Show a whole conversation, across mailboxes, oldest first.

    Bodies are escaped as `read` escapes them; --raw prints them as stored.
    """
    with _post_office() as po:
        messages = po.thread(message_id)
    if as_json:
        emit_json({"v": 1, "thread": messages[0]["thread"], "messages": messages})
        return
    text = "\n".join(_render(m) for m in messages).rstrip("\n")
    _show(text, raw)


@mail_app.command("log")
def mail_log(
    owner: Optional[str] = typer.Argument(None, metavar="[@AGENT]", help="Whose mailbox (default: your own)."),
    limit: Optional[int] = typer.Option(None, "-n", "--max-count", min=1, help="Show at most N events."),
    as_json: bool = JSON,
) -> None:
    """The event history of a mailbox (deliveries, reads, dones), newest first."""
    with _post_office() as po:
        entries = po.log(owner, limit)
    if as_json:
        emit_json({"v": 1, "events": [e.__dict__ for e in entries]})
        return
    rows = [(e.commit[:10], e.time.replace("T", " ")[:19], e.trailers.get("Aipass-Event", "?"), e.author, e.subject) for e in entries]
    typer.echo(table(["COMMIT", "TIME", "EVENT", "BY", "SUBJECT"], rows, max_width=80) if rows else "no events")
