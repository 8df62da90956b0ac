"""What happened since the last look: the events rules fire on.

Three sources, each read from a position kept between looks (engine.py keeps them):

- the event refs (`refs/aipass/{mail,prs,plans}/*`): every event commit written since
  the tips last seen, in one `git log` over all the ranges. Only commits stamped with
  this clone (`Aipass-Clone`, store/events.py) count: an event fires rules where it
  happened, not again in every clone that fetches it. Under `trust: signed`, a commit no
  trusted key signed is not an event at all (a forged delivery must not wake anyone).
- the base branch: each commit new on it (with the paths it changed);
- the runtime log (`events.jsonl`): dispatches that finished, bounced, crashed or were
  cancelled, and audits that failed on a branch (and, for watch.py, the runs it names).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aipass_git.core import git
from aipass_git.core.errors import AipassError
from aipass_git.core.repo import Repo
from aipass_git.mail import mailbox
from aipass_git.plans import plan as plan_mod
from aipass_git.prs import record
from aipass_git.store.events import CLONE_TRAILER, EventStore

WATCHED = ("refs/aipass/mail/", "refs/aipass/prs/", "refs/aipass/plans/")
_PR_EVENTS = {"opened": "pr.opened", "merged": "pr.merged", "bounced": "pr.bounced"}
_PLAN_EVENTS = {"phase-done": "plan.phase-done", "phase-failed": "plan.phase-failed"}
_RESULTS = {"ok": "dispatch.finished", "bounced": "dispatch.bounced", "crashed": "dispatch.crashed",
            "cancelled": "dispatch.cancelled"}


@dataclass
class Seen:
    kind: str  # an event kind of rules.EVENTS
    fields: dict[str, str]
    source: str  # the commit or log position it came from, for the firing's record
    refs: dict[str, str] = field(default_factory=dict)  # ids to look up more by (pr, plan)


def tips(repo: Repo) -> dict[str, str]:
    """Ref -> commit of every watched event ref, in one call."""
    out = {}
    for ref, oid in git.list_refs(repo.root, "refs/aipass/"):
        if ref.startswith(WATCHED):
            out[ref] = oid
    return out


def ref_events(repo: Repo, old: dict[str, str], new: dict[str, str], here: str,
               trusted=None) -> list[Seen]:
    """The events of commits on the watched refs between OLD and NEW tips, oldest first,
    written in clone HERE; TRUSTED(commit) says whether a commit's signature holds (None:
    every commit counts)."""
    changed = [ref for ref, tip in new.items() if old.get(ref) != tip]
    if not changed:
        return []
    revs = [new[ref] for ref in changed] + [f"^{old[ref]}" for ref in changed if ref in old]
    sep, end = "\x1f", "\x1e"
    out = git.run(["log", "--stdin", "--reverse", "--no-merges", f"--format=%H{sep}%s{sep}%(trailers:only,unfold){end}"],
                  repo.root, input=("\n".join(revs) + "\n").encode()).stdout.decode("utf-8", "replace")
    seen = []
    for entry in out.split(end):
        if not entry.strip():
            continue
        commit, subject, raw = entry.strip("\n").split(sep, 2)
        trailers = dict(line.split(": ", 1) for line in raw.splitlines() if ": " in line)
        if trailers.get(CLONE_TRAILER) != here:
            continue
        event = _of_commit(commit, subject, trailers)
        if event is not None and (trusted is None or trusted(commit)):
            seen.append(event)
    return seen


def _of_commit(commit: str, subject: str, t: dict[str, str]) -> Seen | None:
    kind = t.get("Aipass-Event", "")
    if kind == "deliver" and "Aipass-Message" in t:
        # "mail: FROM -> TO: SUBJECT": the subject as written, after the routing
        text = subject.split(": ", 2)[2] if subject.count(": ") >= 2 else subject
        return Seen("mail.delivered", {"agent": t.get("Aipass-To", ""), "mail.id": t["Aipass-Message"],
                                       "mail.subject": text, "mail.from": t.get("Aipass-From", ""),
                                       "mail.kind": t.get("Aipass-Kind", "mail")}, commit)
    if kind in _PR_EVENTS and "Aipass-PR" in t:
        return Seen(_PR_EVENTS[kind], {"pr.id": t["Aipass-PR"], "pr.branch": t.get("Aipass-Branch", "")}, commit,
                    {"pr": t["Aipass-PR"]})
    if kind in _PLAN_EVENTS and "Aipass-Plan" in t:
        return Seen(_PLAN_EVENTS[kind], {"plan.id": t["Aipass-Plan"], "phase.name": t.get("Aipass-Phase", "")}, commit,
                    {"plan": t["Aipass-Plan"]})
    if kind == "closed" and "Aipass-Plan" in t:
        return Seen("plan.closed", {"plan.id": t["Aipass-Plan"]}, commit, {"plan": t["Aipass-Plan"]})
    return None


def base_events(repo: Repo, branch: str, old: str | None, new: str | None) -> list[Seen]:
    """A `commit` event for each commit new on BRANCH (first parent: merges count as one),
    with the paths it changed."""
    if new is None or old is None or old == new:
        return []
    sep, end = "\x1f", "\x1e"
    out = git.run(["log", "--reverse", "--first-parent", "-m", "--name-only", "-z",
                   f"--format={end}%H{sep}%s{sep}%an{sep}%ae", f"{old}..{new}"], repo.root).stdout
    seen = []
    for entry in out.decode("utf-8", "surrogateescape").split(end):
        if not entry.strip("\0\n"):
            continue
        head, _, rest = entry.partition("\n")
        commit, subject, author, email = head.split(sep, 3)
        paths = sorted({p.strip("\n") for p in rest.split("\0") if p.strip("\n")})
        name, _, domain = email.partition("@")
        seen.append(Seen("commit", {"commit.id": commit, "commit.subject": subject, "commit.author": author,
                                    "commit.paths": " ".join(paths),
                                    "agent": name if domain == "aipass.invalid" else ""}, commit))
    return seen


def runtime_events(records: list[dict[str, Any]]) -> list[Seen]:
    """Dispatch ends and failed audits among the runtime log's RECORDS."""
    seen = []
    for r in records:
        if r.get("event") == "finished" and r.get("result") in _RESULTS:
            seen.append(Seen(_RESULTS[r["result"]], {"agent": r.get("agent", ""), "dispatch.id": r.get("dispatch", ""),
                                                      "dispatch.result": r["result"],
                                                      "dispatch.reason": str(r.get("reason") or "")},
                             f"events.jsonl {r.get('time', '')}", {"dispatch": r.get("dispatch", "")}))
        elif r.get("event") == "audit-failed":
            seen.append(Seen("audit.failed", {"agent": r.get("agent", ""), "branch": r.get("branch", ""),
                                              "audit.errors": str(r.get("errors", ""))}, f"events.jsonl {r.get('time', '')}"))
    return seen


def details(store: EventStore, seen: list[Seen]) -> None:
    """Fill in what the commits do not carry (a PR's title and author, a plan's title, a
    phase's owner, a dispatch's subject), reading each entity once."""
    prs: dict[str, Any] = {}
    plans: dict[str, Any] = {}
    subjects: dict[str, dict[str, str]] = {}
    for s in seen:
        if "pr" in s.refs:
            if s.refs["pr"] not in prs:
                prs[s.refs["pr"]] = _quiet(lambda: record.PRBook(store).get(s.refs["pr"]))
            pr = prs[s.refs["pr"]] or {}
            s.fields.update({"pr.title": pr.get("title", ""), "agent": pr.get("agent", "")})
        if "plan" in s.refs:
            if s.refs["plan"] not in plans:
                plans[s.refs["plan"]] = _quiet(lambda: plan_mod.PlanBook(store).get(s.refs["plan"]))
            doc = plans[s.refs["plan"]] or {"phases": []}
            s.fields["plan.title"] = doc.get("title", "")
            owner = next((p["owner"] for p in doc["phases"] if p["name"] == s.fields.get("phase.name")), "")
            if s.kind.startswith("plan.phase"):
                s.fields["agent"] = owner
        if s.refs.get("dispatch") and s.fields.get("agent"):
            agent = s.fields["agent"]
            if agent not in subjects:
                subjects[agent] = _quiet(lambda: {l["id"]: l["subject"] for l in mailbox.MailboxReader(store, agent).summaries()}) or {}
            s.fields["dispatch.subject"] = subjects[agent].get(s.refs["dispatch"], "")


def _quiet(read):
    """READ(), or None when the entity cannot be read (the audit reports those)."""
    try:
        return read()
    except AipassError:
        return None
