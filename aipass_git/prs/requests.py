"""Opening, listing, showing and closing PRs (`git aipass pr ...`)."""

from __future__ import annotations

import os
from typing import Any

from aipass_git.agents import desk, policy
from aipass_git.agents.session import Session
from aipass_git.core import config as config_mod, git, ids, secrets
from aipass_git.core.errors import RefusedError
from aipass_git.core.repo import Repo
from aipass_git.core.validate import Str, check_input
from aipass_git.mail.postoffice import PostOffice
from aipass_git.memory import review
from aipass_git.prs import record
from aipass_git.store.events import EventStore
from aipass_git.core.text import article, is_utf8, plural


TITLE = Str(max_len=200, one_line=True)
BODY = Str(min_len=0, max_len=1024 * 1024, test=is_utf8, expected="UTF-8 text")


def open_pr(repo: Repo, *, title: str | None = None, body: str = "") -> tuple[dict[str, Any], str]:
    """Open a PR for the desk this runs on, or update the open one. Returns (PR, what happened)."""
    session = Session.open(repo)
    config, speaker = session.config, session.speaker
    branch = git.current_branch(repo.root)
    if speaker.is_human or branch != desk.branch_for(speaker.name):
        raise RefusedError(
            f"pr open runs on an agent's desk (branch {desk.branch_for('<agent>')}), not on {branch or 'a detached HEAD'}",
            "run it from the desk's worktree, where the agent commits its work",
        )
    base = config.base_branch
    if git.resolve_commit(repo.root, f"refs/heads/{base}") is None:
        raise RefusedError(f"the base branch {base!r} does not exist", "create it, or fix base_branch in .aipass/config.yaml")
    head = git.head_commit(repo.root)
    subjects = git.commits(repo.root, f"refs/heads/{base}..{head}", "%s")
    if not subjects:
        raise RefusedError(f"{branch} has no commits that {base} lacks", "commit your work on the desk first")
    given = title is not None
    title = (title or subjects[-1]).strip()[:200]
    check_input(title, TITLE, "--title" if given else "the PR title (the subject of the desk's first commit)",
                "give a plain one-line --title")
    check_input(body, BODY, "--body", "give text")
    dispatch = os.environ.get("AIPASS_DISPATCH", "")
    dispatch = dispatch if ids.is_id(dispatch) else None  # opened during a dispatch: remembered for its plan
    with PostOffice(session) as po:
        store = po.store
        existing = [p for p in record.PRBook(store).all() if p["branch"] == branch and p["state"] in ("open", "bounced")]
        if existing and existing[0]["head"] == head and existing[0]["state"] == "open":
            return existing[0], "unchanged"
        happened = "updated" if existing else "opened"
        pr_id = existing[0]["id"] if existing else ids.new_id()
        notice = (f"PR {happened}: {title}"[:200],
                  f"@{speaker.name} {happened} PR {pr_id} ({branch} -> {base}, head {head[:10]}).\n\n"
                  f"{plural(len(subjects), 'commit')}:\n" + "\n".join(f"  {s}" for s in subjects) +
                  f"\n\nReview: git aipass pr show {pr_id[:12]}\nMerge:  git aipass pr merge {pr_id[:12]}\n")
        # every check before the record moves: a notice refused after it (a secret in the
        # title) left a PR behind that the refusal said was not written
        kinds = secrets.check("the PR", title, body, *subjects, allow=True)
        if kinds:
            raise RefusedError(f"the PR's title, body or commit subjects look like they hold "
                               f"{', '.join(article(k) for k in kinds)}; nothing was written",
                               "remove it (a commit subject: git rebase -i to reword it), and rotate it if it is real")
        po.check_text(*notice)
        if existing:
            pr = existing[0]
            change = {"head": head, "state": "open", "reason": None, "conflicts": [], "findings": [], "title": title,
                      **({"dispatch": dispatch} if dispatch else {})}
            if body:
                change["body"] = body
            store.append(record.ref_for(pr["id"]), record.event("updated", speaker.author, change, summary=head[:10]))
            pr = {**pr, **change}
        else:
            pr = record.new(agent=speaker.name, branch=branch, base=base, head=head, title=title, body=body,
                            dispatch=dispatch, pr_id=pr_id)
            store.append(record.ref_for(pr["id"]), record.event("opened", speaker.author, {}, create=pr))
        po.send([config.orchestrator], *notice, kind="pr", meta={"pr": pr["id"]})
    return pr, happened


def list_prs(repo: Repo, state: str = "open") -> list[dict[str, Any]]:
    """PRs in STATE (one of record.STATES, or "all"), oldest first."""
    if state not in (*record.STATES, "all"):
        raise RefusedError(f"--state: {state!r} is not one of {', '.join(record.STATES)}, all", "see: git aipass pr list -h")
    with EventStore(repo) as store:
        prs = record.PRBook(store).all()
    if state != "all":
        prs = [p for p in prs if p["state"] == state]
    return sorted(prs, key=lambda p: p["id"])


def show(repo: Repo, raw_id: str) -> dict[str, Any]:
    """The PR with its commits, files and the memory its branch changes."""
    with EventStore(repo) as store:
        pr = record.PRBook(store).get(raw_id)
        history = store.history(record.ref_for(pr["id"]))
    base, head = f"refs/heads/{pr['base']}", pr["head"]
    # once merged, the PR's own changes are those of its merge commit over the old base
    old = f"{pr['merge_commit']}^1" if pr["merge_commit"] else base
    commits = git.commits(repo.root, f"{old}..{head}")
    files = git.name_status(repo.root, f"{old}...{head}")
    try:
        memory = review.diff(repo, config_mod.load(repo), f"{base}...{head}")["agents"]
    except RefusedError:
        memory = []
    events = [{"event": h.trailers.get("Aipass-Event"), "by": h.author, "time": h.time, "subject": h.subject} for h in history]
    return {**pr, "commits": commits, "files": files, "memory": memory, "events": events}


def close(repo: Repo, raw_id: str) -> dict[str, Any]:
    session = Session.open(repo)
    speaker = session.speaker
    with EventStore(repo) as store:
        pr = record.PRBook(store).get(raw_id)
        policy.require_may_close_pr(speaker.name, pr["agent"], session.orchestrator)
        store.append(record.ref_for(pr["id"]), record.event("closed", speaker.author, {"state": "closed"},
                                                            expect=("open", "bounced")))
    return {**pr, "state": "closed"}
