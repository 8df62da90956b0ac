"""Claims: a commit that changed a path under someone else's exclusive claim, while it held.

The hooks refuse such commits where aipass-git's hooks run; this finds the ones that got
past them (`--no-verify`, a clone without the hooks, a claim that arrived by sync later).
"""

from __future__ import annotations

from datetime import datetime, timezone

from aipass_git.agents.identity import agent_of_email
from aipass_git.audit.engine import Problem, standard
from aipass_git.claims import claim
from aipass_git.claims.matcher import Matcher
from aipass_git.core import git
from aipass_git.core.names import HUMAN
from aipass_git.store.events import EventStore

RECENT_COMMITS = 2000  # the latest commits on every branch, back to the oldest claim


@standard("claims.crossed", "no commit changed a path under another's exclusive claim while it held", severity="warning")
def crossed(ctx):
    root = ctx.repo.root
    if not git.list_refs(root, claim.NAMESPACE):
        return
    with EventStore(ctx.repo) as store:
        books = claim.ClaimBook(store).everyone()
    exclusive = [(holder, c) for holder, doc in books.items() for c in doc["claims"] if c["mode"] == "exclusive"]
    if not exclusive:
        return
    oldest = min(c["created"] for _, c in exclusive)
    ignorecase = git.ignorecase(root)
    matchers: dict[tuple, Matcher] = {}
    for (commit, email, seconds, subject), paths in git.log_touched(
            root, ["--branches", f"--since={oldest}"], ["%H", "%ae", "%ct", "%s"], limit=RECENT_COMMITS):
        when = datetime.fromtimestamp(int(seconds), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        who = agent_of_email(email) or HUMAN
        live = [(h, c) for h, doc in books.items() if h != who for c in claim.active_at(doc, when) if c["mode"] == "exclusive"]
        key = (who, tuple(c["id"] for _, c in live))
        if key not in matchers:  # commits in a row mostly see the same claims
            matchers[key] = Matcher(live, ignorecase=ignorecase)
        found = matchers[key].first_crossing(paths)
        if found:
            path, (holder, c) = found
            yield Problem(f"commit {commit[:10]}", f"@{who} changed {path} ({subject[:50]}) while @{holder} held "
                          f"an exclusive claim on {c['glob']} (until {c['expires']})",
                          f"talk it over with @{holder}; the hooks refuse this where they are installed (git aipass hooks install)")


@standard("claims.proven", "every claim ref can be believed: it parses and, under trust: signed, its events are signed by their claimant")
def proven(ctx):
    if not git.list_refs(ctx.repo.root, claim.NAMESPACE):
        return
    with EventStore(ctx.repo) as store:
        book = claim.ClaimBook(store)
        book.everyone()
    for claimant, why in sorted(book.unproven.items()):
        yield Problem(claim.ref_for(claimant), f"the claims of @{claimant} are not enforced: {why}",
                      "someone wrote this ref without the claimant's key; find who (git log --show-signature "
                      f"{claim.ref_for(claimant)}), then delete it: git update-ref -d {claim.ref_for(claimant)}")


STANDARDS = [crossed, proven]
