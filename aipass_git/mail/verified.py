"""Which messages of a mailbox were delivered by their sender, as signatures prove.

A message is verified when the commit that delivered it (its `deliver` event) is signed by
a key trusted for the committer (store/verify.py) and that committer may speak for the
message's sender: the sender itself, or, acting for an agent, a human or the
orchestrator. Anything else in the tree (written with plain git, fetched from a clone that
forged it, brought in by an unsigned merge) is unverified: shown as such, and with
`trust: signed` it never wakes an agent.

Each mailbox's answer is kept per allowed-signers file in the runtime folder, with the tip
it was computed at; a later read walks only the commits since, every mailbox's together.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

from aipass_git.agents import policy
from aipass_git.agents.trust import signer_name
from aipass_git.core import git
from aipass_git.core.canonical import encode, write_derived
from aipass_git.core.config import Config
from aipass_git.mail import mailbox
from aipass_git.mail.summary_index import SummaryIndex
from aipass_git.store.events import EventStore
from aipass_git.store.objects import commit_tree_and_parents
from aipass_git.store.verify import Roster, Verdict, Verifier, roster_at

_TRAILER = re.compile(rb"^(Aipass-[A-Za-z-]+): *(.*)$", re.M)


class Trust:
    """Verification of mailboxes for one command (one roster, one cache)."""

    def __init__(self, store: EventStore, config: Config) -> None:
        self.store = store
        self.config = config
        self.roster: Roster = roster_at(store, config.base_branch)
        self.verifier = Verifier(store, self.roster)

    @property
    def active(self) -> bool:
        """Whether this repository signs at all (its base branch lists signers)."""
        return self.roster.blob_id is not None

    @property
    def enforced(self) -> bool:
        return self.active and self.config.trust == "signed"

    def may_speak_for(self, sender: str, principal: str) -> bool:
        return policy.may_sign_for(sender, signer_name(principal, self.roster.humans), self.config.orchestrator)

    def unverified(self, owner: str) -> dict[str, str]:
        """Message id -> why, for the messages of OWNER's mailbox not proven delivered by
        their sender. Empty when the repository does not sign."""
        if not self.active:
            return {}
        tip = self.store.tip(mailbox.ref_for(owner))
        if tip is None:
            return {}
        held = [l["id"] for l in mailbox.MailboxReader(self.store, owner).summaries()]
        proven, bad = self._proven(owner, tip)
        return {mid: bad.get(mid, "no signed delivery") for mid in held if mid not in proven}

    def unverified_all(self) -> dict[str, dict[str, str]]:
        """`unverified` of every mailbox that holds any, read through the summary index
        (one query for every mailbox's ids, then each mailbox's cached verdicts)."""
        if not self.active:
            return {}
        # mailboxes found clean at their tip need no second look while the tip stays (one
        # file for all of them, not a thousand verdict files read by every doctor)
        # not mail-<name>-...: an agent may be called "clean"
        clean_path = self.store.repo.runtime_dir / "trust" / f"clean-mailboxes-{self.roster.blob_id}.json"
        try:
            clean = json.loads(clean_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            clean = {}
            self._forget_other_rosters()
        except ValueError:
            clean = {}
        before = dict(clean)
        with SummaryIndex(self.store) as index:
            owned = index.owned([owner for owner, tip in index.tips().items() if clean.get(owner) != tip])
        out = {}
        verdicts = self._proven_many({owner: tip for owner, (tip, _) in owned.items()})
        for owner, (tip, held) in owned.items():
            proven, bad = verdicts[owner]
            found = {mid: bad.get(mid, "no signed delivery") for mid in held if mid not in proven}
            if found:
                out[owner] = found
                clean.pop(owner, None)
            else:
                clean[owner] = tip
        if clean != before:
            write_derived(clean_path, encode(clean))  # only a shortcut: the next look checks again
        return out

    def _forget_other_rosters(self) -> None:
        """The first look under a new allowed-signers file (an agent added, a key rotated)
        drops the mailbox verdicts kept for the others: a file per mailbox and per file
        would pile up. The signatures themselves stay known (store/verify.py)."""
        folder = self.store.repo.runtime_dir / "trust"
        mine = f"-{self.roster.blob_id}.json"
        try:
            names = os.listdir(folder)
        except FileNotFoundError:
            return
        for name in names:
            if (name.startswith(("mail-", "clean-mailboxes-")) and name.endswith(".json") and not name.endswith(mine)) \
                    or name.endswith(".ok"):
                try:
                    os.unlink(folder / name)
                except FileNotFoundError:
                    pass  # another process swept it

    def _cache_file(self, owner: str):
        return self.store.repo.runtime_dir / "trust" / f"mail-{owner}-{self.roster.blob_id}.json"

    def _proven(self, owner: str, tip: str) -> tuple[set[str], dict[str, str]]:
        return self._proven_many({owner: tip})[owner]

    def _proven_many(self, tips: dict[str, str]) -> dict[str, tuple[set[str], dict[str, str]]]:
        """Owner -> (ids proven delivered by their sender, id -> why not) at the mailbox
        commit TIPS names for it: each answer as cached, brought up to its tip by the
        commits since (all mailboxes' walked together)."""
        cached = {owner: self._cached(owner) for owner in tips}
        moved = {owner: (tip, cached[owner].get("tip")) for owner, tip in tips.items() if cached[owner].get("tip") != tip}
        walked = self._commits_since(moved)
        every = [item for owner in moved for item in walked[owner]]
        verdicts = dict(zip((commit for commit, _ in every), self.verifier.check_many(every)))
        out = {}
        for owner, tip in tips.items():
            proven, bad = set(cached[owner].get("proven", [])), dict(cached[owner].get("bad", {}))
            if owner in moved:
                self._judge(owner, walked[owner], verdicts, proven, bad)
                path = self._cache_file(owner)
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(path.name + ".tmp")
                tmp.write_text(json.dumps({"tip": tip, "proven": sorted(proven), "bad": bad}), encoding="utf-8")
                tmp.replace(path)
            out[owner] = (proven, bad)
        if moved:
            self.verifier.save()
        return out

    def _cached(self, owner: str) -> dict[str, Any]:
        try:
            return json.loads(self._cache_file(owner).read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return {}

    def _commits_since(self, spans: dict[str, tuple[str, str | None]]) -> dict[str, list[tuple[str, bytes]]]:
        """Owner -> (commit, its raw text) of every commit from its tip back to the one it
        was last judged at (all of them without one), oldest first. The mailboxes' first
        parents are followed together, one batch of reads per step back; a mailbox whose
        history forked and joined (a sync's merge) is asked of git, which knows what the
        commit judged before already covers. Mailboxes never judged are read whole, all of
        them in one `git log` (a step back per round trip would cost one per message)."""
        walks: dict[str, list[tuple[str, bytes]]] = {owner: [] for owner in spans}
        whole = {tip: owner for owner, (tip, since) in spans.items() if since is None}
        if whole:
            found = git.log(self.store.repo.root, ["--reverse", "--source", *whole], ["%H", "%S"])
            commits = [commit for commit, _ in found]
            for (commit, source), (_, raw) in zip(found, self.store.reader.read_many(commits)):
                walks[whole[source]].append((commit, raw))
        frontier = {owner: tip for owner, (tip, since) in spans.items() if since is not None}
        merged = []
        while frontier:
            owners = sorted(frontier)
            step: dict[str, str] = {}
            for owner, (_, raw) in zip(owners, self.store.reader.read_many([frontier[o] for o in owners])):
                walks[owner].append((frontier[owner], raw))
                parents = commit_tree_and_parents(raw)[1]
                if len(parents) > 1:
                    merged.append(owner)
                elif parents and parents[0] != spans[owner][1]:
                    step[owner] = parents[0]
            frontier = step
        for owner in merged:
            tip, since = spans[owner]
            span = [tip] + ([f"^{since}"] if since and self.store.reader.resolve(since) else [])
            commits = git.output(["rev-list", *span], self.store.repo.root).split()
            walks[owner] = [(c, raw) for c, (_, raw) in zip(commits, self.store.reader.read_many(commits))]
        # the stepped and asked walks are newest first; the whole ones came oldest first
        return {owner: walk if spans[owner][1] is None else walk[::-1] for owner, walk in walks.items()}

    def _judge(self, owner: str, commits: list[tuple[str, bytes]], verdicts: dict[str, Verdict], proven: set[str],
               bad: dict[str, str]) -> None:
        """Bring PROVEN and BAD (of OWNER's mailbox) up to date with COMMITS, oldest first,
        whose signatures VERDICTS judged."""
        for commit, raw in commits:
            trailers = {k.decode(): v.decode("utf-8", "replace").strip()
                        for k, v in _TRAILER.findall(raw.split(b"\n\n", 1)[-1])}
            verdict = verdicts[commit]
            event, mid = trailers.get("Aipass-Event"), trailers.get("Aipass-Message")
            if not verdict.ok:
                # whatever an unproven commit changed (a message, a status, a claim) is
                # suspect, whatever its trailers say it is
                for changed in self._messages_changed(commit, raw):
                    bad[changed] = f"changed by an unproven commit ({verdict.reason})"
                    proven.discard(changed)
            elif event == "deliver" and mid:
                if mid in bad:
                    continue  # tampered with before: stays unverified
                if self.may_speak_for(trailers.get("Aipass-From", ""), verdict.principal):
                    proven.add(mid)
                else:
                    bad[mid] = f"signed by {verdict.principal}, who may not speak for @{trailers.get('Aipass-From')}"
            elif event in ("read", "done", "claim") and mid and not self.may_speak_for(owner, verdict.principal):
                # only the owner (or the human or orchestrator for an agent) moves its mail
                bad[mid] = f"{event} by {verdict.principal}, who may not act on @{owner}'s mailbox"
                proven.discard(mid)

    def _messages_changed(self, commit: str, raw: bytes) -> set[str]:
        """Ids of the messages whose file or index line COMMIT added or changed (against its
        first parent)."""
        first_parent = re.search(rb"^parent ([0-9a-f]+)$", raw.split(b"\n\n", 1)[0], re.M)
        args = ["diff-tree", "-r", "-z", "--no-commit-id"]
        args += [first_parent.group(1).decode(), commit] if first_parent else ["--root", commit]
        fields = git.zsplit(git.run(args, self.store.repo.root).stdout)
        ids: set[str] = set()
        indexes: list[tuple[str, str]] = []
        for meta, path in zip(fields[0::2], fields[1::2]):
            old, new = meta.split()[2:4]
            if path.endswith(".json"):
                ids.add(path.rsplit("/", 1)[-1][:-5])
            elif path.endswith(mailbox.INDEX):
                indexes.append((old, new))
        for old, new in indexes:
            before, after = ({json.loads(line)["id"]: line for line in self._lines(oid)} for oid in (old, new))
            ids |= {mid for mid, line in after.items() if before.get(mid) != line}
        return ids

    def _lines(self, oid: str) -> list[bytes]:
        if set(oid) == {"0"}:
            return []
        return [line for line in self.store.blob(oid).splitlines() if line.strip()]

    def mark(self, owner: str, lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """LINES (summaries or messages of OWNER's mailbox) with `verified` set on each, and
        on an unverified one `unverified`: why."""
        if not self.active:
            return lines
        tip = self.store.tip(mailbox.ref_for(owner))
        proven, bad = self._proven(owner, tip) if tip else (set(), {})
        for line in lines:
            line["verified"] = line["id"] in proven
            if not line["verified"]:
                line["unverified"] = bad.get(line["id"], "no signed delivery")
        return lines
