"""The merge queue: the orchestrator (or the human) merges agents' PRs, one at a time.

Every merge happens under one repo-wide lock in the git common dir, shared by all
worktrees; its holder (who, pid, since) is recorded for whoever waits. Inside it: the PR
head is re-read (a head that moved is recorded and re-checked), the merge is computed
without touching any working tree (`git merge-tree --write-tree`), the merged files are
audited, and the base branch moves by compare-and-swap; when it is checked out in a
clean worktree, that worktree's index and files are brought along (`read-tree -m -u`).
A conflict or a failing audit bounces the PR to its author with the files or findings;
nothing is merged.

A kill at any step leaves nothing that needs a person: the move of the base and the
worktree's catch-up are journalled and finished by the next merge, and the author's
notice is part of the PR's record (`told: false` until sent), so whichever run next
sees it unsent sends it, once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from aipass_git.agents import policy
from aipass_git.agents.trust import signer_name
from aipass_git.agents.session import Session
from aipass_git.audit.runner import audit_merge
from aipass_git.claims import claim as claims
from aipass_git.core import clock, config as config_mod, faults, git
from aipass_git.core.errors import AipassError, RefusedError
from aipass_git.core.program import kick_triggers, run_detached
from aipass_git.core.repo import Repo
from aipass_git.mail import mailbox
from aipass_git.mail.postoffice import PostOffice
from aipass_git.prs import record, requests
from aipass_git.store import locks
from aipass_git.store.events import EventStore
from aipass_git.store.journal import Entry, Journal
from aipass_git.store.refs import move
from aipass_git.store import verify
from aipass_git.store.verify import roster_at
from aipass_git.core.text import plural

JOURNAL_KIND = "merge"


@dataclass
class Outcome:
    pr: str
    result: str  # merged | bounced | skipped
    detail: str = ""
    merge_commit: str | None = None
    conflicts: list[str] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)


def record_unproven(store: EventStore, config: config_mod.Config, pr: dict) -> str | None:
    """Why PR's record cannot be believed (trust: signed), or None: every event signed
    by a trusted key, the opening one by the PR's agent (or the human or orchestrator
    for it). A forged record never reaches a merge."""
    return _doubts(store, config, pr, merged=False)


def merge_unproven(store: EventStore, config: config_mod.Config, pr: dict) -> str | None:
    """Why PR's `merged` state cannot be believed (trust: signed), or None: its record is
    proven (`record_unproven`) and a `merged` event in it is signed by one who may merge.
    A record rewritten to say merged (with plain git, or by its agent with its own key)
    ends no plan phase."""
    return _doubts(store, config, pr, merged=True)


def _doubts(store: EventStore, config: config_mod.Config, pr: dict, *, merged: bool) -> str | None:
    """`record_unproven`, and with MERGED `merge_unproven`, from one walk of the record."""
    if config.trust != "signed":
        return None
    roster = roster_at(store, config.base_branch)
    if roster.blob_id is None:
        return None
    events = verify.history(store, record.ref_for(pr["id"]), roster)
    for commit, _, verdict in events:
        if not verdict.ok:
            return f"event {commit[:10]} is {verdict.reason}"
    opening = events[0][2] if events else None
    if opening is None or not policy.may_sign_for(pr["agent"], signer_name(opening.principal, roster.humans),
                                                  config.orchestrator):
        return f"it was opened by {opening.principal if opening else 'nobody'}, not by @{pr['agent']}"
    if not merged:
        return None
    signers = [v for _, raw, v in events if verify.event_of(raw) == "merged"]
    if any(policy.may_merge(signer_name(v.principal, roster.humans), config.orchestrator) for v in signers):
        return None
    by = ", ".join(sorted({v.principal for v in signers})) or "no merged event"
    return f"its merge is not by the human or @{config.orchestrator} ({by})"


class MergeQueue:
    def __init__(self, repo: Repo, *, on_wait: Callable[[dict], None] | None = None,
                 session: Session | None = None) -> None:
        self.session = session or Session.open(repo)
        self.repo, self.config, self.registry = repo, self.session.config, self.session.registry
        self.speaker = self.session.speaker
        policy.require_may_merge(self.speaker.name, self.config.orchestrator)
        self.on_wait = on_wait
        self.lock = locks.Held(repo.runtime_dir / "locks" / "merge.lock", f"the merge queue of {self.speaker.display}")

    # -- the lock -----------------------------------------------------------------------

    def locked(self):
        """The repo-wide merge lock; whoever waits is told who holds it."""
        return self.lock.acquired(float(self.config.timeouts["merge_lock_seconds"]),
                                  "wait for that merge to finish, or raise timeouts.merge_lock_seconds",
                                  on_wait=self.on_wait)

    def holder(self) -> dict:
        return self.lock.holder()

    # -- merging ------------------------------------------------------------------------

    def merge_all(self) -> list[Outcome]:
        """Every open PR, oldest first; each is re-read under the lock, so two queues never
        merge the same PR twice."""
        with EventStore(self.repo) as store, self.locked():
            self.recover(store)  # a merge a crash interrupted may close a PR of the list
        return [self.merge(pr["id"]) for pr in requests.list_prs(self.repo, "open")]

    def merge(self, raw_id: str) -> Outcome:
        with EventStore(self.repo) as store, self.locked():
            self.recover(store)
            pr = record.PRBook(store).get(raw_id)
            if pr["state"] != "open":
                return Outcome(pr["id"], "skipped", f"already {pr['state']}")
            try:
                self.registry.resolve(pr["agent"])
            except AipassError as exc:
                raise RefusedError(f"PR {pr['id'][:12]} is by @{pr['agent']}: {exc.message}",
                                   "close it (git aipass pr close ID) or hand the branch to an active agent") from None
            unproven = self._unproven(store, pr)
            if unproven:
                return self._bounce(store, pr, f"its record is not proven: {unproven}")
            base_ref = f"refs/heads/{pr['base']}"
            base_old = git.resolve_commit(self.repo.root, base_ref)
            if base_old is None:
                raise RefusedError(f"the base branch {pr['base']!r} does not exist", "create it, or close the PR")
            worktree = self._checked_out(base_ref)
            if worktree is not None and git.is_dirty(worktree):
                raise RefusedError(f"{pr['base']} is checked out in {worktree} with uncommitted changes",
                                   "commit or stash them there, then merge again")
            head = git.resolve_commit(self.repo.root, f"refs/heads/{pr['branch']}")
            if head is None:
                return self._bounce(store, pr, f"the branch {pr['branch']} was deleted after the PR was opened")
            if head != pr["head"]:
                store.append(record.ref_for(pr["id"]), record.event(
                    "updated", self.speaker.author, {"head": head}, summary=f"head moved to {head[:10]}"))
                pr["head"] = head
            if git.is_ancestor(self.repo.root, head, base_old):
                return self._merged(store, pr, base_old, "already in the base branch")
            claimed = claims.guard_for(store, pr["agent"])
            crossed = claimed.first_crossing(git.touched_in_commits(self.repo.root, [head, "--not", base_old])) if claimed else None
            if crossed:
                path, (holder, c) = crossed
                return self._bounce(store, pr, f"it changes {path}, claimed by @{holder} until {c['expires']} ({c['glob']})")
            tree, conflicts = git.merge_tree(self.repo.root, base_old, head)
            if conflicts:
                return self._bounce(store, pr, "the merge conflicts", conflicts=conflicts)
            findings = audit_merge(self.repo, tree, base_old)
            store.append(record.ref_for(pr["id"]), record.event(
                "audited", self.speaker.author, {"audit": {"errors": len(findings), "at": clock.utc_now()}},
                summary=plural(len(findings), "error")))
            if findings:
                return self._bounce(store, pr, "the audit of the merged tree failed", findings=findings)
            message = (f"Merge PR {pr['id'][:12]}: {pr['title']}\n\n"
                       f"{pr['branch']} by @{pr['agent']}, merged by {self.speaker.display}.\n\n"
                       f"Aipass-PR: {pr['id']}\nAipass-Agent: {pr['agent']}\n")
            commit = self._commit_tree(tree, [base_old, head], message)
            doc = {"pr": pr["id"], "ref": base_ref, "old": base_old, "new": commit,
                   "worktree": str(worktree) if worktree else None}
            with Journal(self.repo).record(JOURNAL_KIND, doc):
                if not move(self.repo.root, base_ref, commit, base_old, f"aipass: merge PR {pr['id'][:12]}"):
                    raise AipassError(f"{base_ref} moved while merging; nothing was merged",
                                      "merge again: the queue re-reads everything")
                faults.point("base-moved")
                if worktree is not None:
                    self._bring_along(worktree, base_old, commit)
                outcome = self._merged(store, pr, commit, "")
            self.tell_pending(store)
            return outcome

    def _unproven(self, store: EventStore, pr: dict) -> str | None:
        return record_unproven(store, config_mod.load(self.repo), pr)

    def recover(self, store: EventStore) -> int:
        """Finish merges a crash interrupted, and send notices no run has sent yet.
        Called under the merge lock; returns how many merges were finished."""
        done = 0
        for entry in Journal(self.repo).orphans(JOURNAL_KIND):
            self._finish(store, entry)
            done += 1
        self.tell_pending(store)
        return done

    def _finish(self, store: EventStore, entry: Entry) -> None:
        doc = entry.doc
        tip = git.resolve_commit(self.repo.root, doc.get("ref", ""))
        if tip and doc.get("new") and tip != doc.get("old") and git.is_ancestor(self.repo.root, doc["new"], tip):
            worktree = doc.get("worktree")
            if worktree and Path(worktree).is_dir() and git.head_commit(Path(worktree)) == doc["new"]:
                self._bring_along(Path(worktree), doc["old"], doc["new"], after_crash=True)
            pr = record.PRBook(store).get(doc["pr"])
            if pr["state"] == "open":
                self._merged(store, pr, doc["new"], "")
        entry.close()

    def _bring_along(self, worktree: Path, old: str, new: str, *, after_crash: bool = False) -> None:
        """Move the index and files of the worktree where the base is checked out from OLD to
        NEW (the branch itself has moved already). After a crash midway, files may be half
        updated: the paths that changed are then taken from NEW."""
        proc = locks.run_git(["read-tree", "-m", "-u", old, new], worktree)
        if proc.returncode != 0 and after_crash:
            proc = locks.run_git(["read-tree", "--reset", "-u", new], worktree)
        if proc.returncode != 0:
            said = proc.stderr.decode("utf-8", "replace").strip().splitlines()
            raise AipassError(f"merged, but {worktree} could not be brought along: {said[-1] if said else 'no output'}",
                              f"bring it along by hand, keeping your changes: git -C {worktree} reset --keep {new[:12]}")

    # -- pieces -------------------------------------------------------------------------

    def _checked_out(self, ref: str) -> Path | None:
        """The worktree where REF is checked out, if any."""
        return next((w.path for w in git.worktrees(self.repo.root) if w.branch == ref), None)

    def _commit_tree(self, tree: str, parents: list[str], message: str) -> str:
        name, email = self.speaker.author.name, self.speaker.author.email
        env = {"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email, "GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": email}
        return git.commit_tree(self.repo.root, tree, parents, message, env=env)

    def _merged(self, store: EventStore, pr: dict, commit: str, note: str) -> Outcome:
        notice = {"subject": f"merged: {pr['title']}"[:200],
                  "body": f"Your PR {pr['id']} ({pr['branch']}) was merged into {pr['base']} as {commit[:10]}"
                          + (f" ({note})" if note else "") + ".\nYour desk is brought up to date at its next wake.\n"}
        store.append(record.ref_for(pr["id"]), record.event(
            "merged", self.speaker.author, {"state": "merged", "merge_commit": commit, "told": False, "notice": notice},
            summary=commit[:10]))
        faults.point("merge-recorded")
        self._advance_plan(store, pr)
        kick_triggers(self.repo.root, self.repo.runtime_dir)
        return Outcome(pr["id"], "merged", note, merge_commit=commit)

    def _advance_plan(self, store: EventStore, pr: dict) -> None:
        """A PR opened in a plan's dispatch merged: let the plan move on (`plan advance`, in
        a process of its own: plans move in a layer above the queue)."""
        if not pr.get("dispatch"):
            return
        task = mailbox.MailboxReader(store, pr["agent"]).message(pr["dispatch"]) or {}
        plan_id = (task.get("meta") or {}).get("plan")
        if plan_id:
            run_detached(self.repo.root, "plan", "advance", plan_id)

    def _bounce(self, store: EventStore, pr: dict, reason: str, *, conflicts: list[str] | None = None,
                findings: list[str] | None = None) -> Outcome:
        conflicts, findings = conflicts or [], findings or []
        body = [f"Your PR {pr['id']} ({pr['branch']} -> {pr['base']}) was not merged: {reason}.", ""]
        if conflicts:
            body += ["Conflicting files:", *(f"  {c}" for c in conflicts), "",
                     f"Merge {pr['base']} into your desk, resolve them, commit, and run: git aipass pr open"]
        if findings:
            body += ["Audit findings:", *(f"  {f}" for f in findings), "", "Fix them, commit, and run: git aipass pr open"]
        notice = {"subject": f"bounced: {pr['title']}"[:200], "body": "\n".join(body) + "\n"}
        store.append(record.ref_for(pr["id"]), record.event(
            "bounced", self.speaker.author,
            {"state": "bounced", "reason": reason, "conflicts": conflicts, "findings": findings,
             "told": False, "notice": notice}, summary=reason))
        self.tell_pending(store)
        kick_triggers(self.repo.root, self.repo.runtime_dir)
        return Outcome(pr["id"], "bounced", reason, conflicts=conflicts, findings=findings)

    def tell_pending(self, store: EventStore) -> int:
        """Send each PR author the notice its record holds unsent; returns how many. A notice
        already in the author's mailbox (sent just before a crash) is not sent twice."""
        pending = [pr for pr in record.PRBook(store).all() if pr.get("told") is False]
        if not pending:
            return 0
        with PostOffice(self.session.as_agent(self.config.orchestrator)) as po:
            for pr in pending:
                if not self._already_told(po, pr):
                    try:
                        po.send([pr["agent"]], pr["notice"]["subject"], pr["notice"]["body"], kind="pr",
                                meta={"pr": pr["id"], "state": pr["state"]})
                    except AipassError:
                        pass  # a retired author gets no mail; the record says it all
                faults.point("pr-told")
                store.append(record.ref_for(pr["id"]), record.event("told", self.speaker.author, {"told": True}))
        return len(pending)

    @staticmethod
    def _already_told(po: PostOffice, pr: dict) -> bool:
        box = mailbox.MailboxReader(po.store, pr["agent"])
        lines = [l for l in box.summaries() if l["kind"] == "pr" and l["subject"] == pr["notice"]["subject"]]
        return any(m["meta"].get("pr") == pr["id"] and m["meta"].get("state") == pr["state"]
                   for m in box.messages([l["id"] for l in lines]))
