"""Merging two histories of one entity (store/entity.py): random event histories on real
refs, merged in every order; the merge is commutative, associative and idempotent, and
loses nothing."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from conftest import git
from hypothesis import HealthCheck, given, settings, strategies as st

from aipass_git.core.repo import discover
from aipass_git.mail import mailbox, message as msg
from aipass_git.prs import record
from aipass_git.store import entity
from aipass_git.store.events import EventStore
from aipass_git.store.objects import Ident

WHO = Ident("tester", "tester@example.invalid")
STATUSES = ("read", "done")
_counter = itertools.count()


@pytest.fixture(scope="module")
def store(tmp_path_factory, isolated_git):
    path = tmp_path_factory.mktemp("merge") / "repo"
    path.mkdir()
    git(path, "init", "-q")
    with EventStore(discover(path)) as s:
        yield s


def message(n: int) -> dict:
    return msg.build(sender="human", recipient="api", subject=f"m{n}", body=f"body {n}", message_id=f"01m8{n:022d}")


# one branch: a list of ops; ("new", k) delivers message k, (status, k) marks it,
# ("claim:<clone>", k) claims it for a clone (two clones claiming offline is the hard case)
ops = st.lists(st.tuples(st.sampled_from(("new", "read", "done", "claim:box-a", "claim:box-b")), st.integers(0, 11)),
               max_size=8)


def build(store: EventStore, base: str | None, steps: list[tuple[str, int]]) -> str | None:
    """A history of STEPS on top of BASE, on a scratch ref; returns its tip."""
    ref = f"refs/test/{next(_counter)}"
    if base:
        store.refs.apply([entity_update(ref, base)])
    for op, k in steps:
        m = message(k)
        if op == "new":
            store.append(ref, mailbox.deliver(m, WHO))
        elif store.view(ref).read(mailbox.message_path(m["id"])) is None:
            continue
        elif op.startswith("claim:"):
            store.append(ref, mailbox.claim("api", m["id"], op[6:], WHO))
        else:
            store.append(ref, mailbox.mark("api", m["id"], op, WHO))
    return store.tip(ref)


def entity_update(ref, new):
    from aipass_git.store.refs import RefUpdate

    return RefUpdate(ref, new, None)


def merged(store: EventStore, a: str | None, b: str | None) -> str | None:
    """The tip both merge to: one side when it holds the other, else a merge commit."""
    if a is None or b is None or a == b:
        return a or b
    if _ancestor(store, a, b):
        return b
    if _ancestor(store, b, a):
        return a
    return entity.merge_tips(store, mailbox.KIND, "refs/aipass/mail/api", a, b, WHO)[0]


def _ancestor(store, a, b) -> bool:
    import subprocess

    return subprocess.run(["git", "merge-base", "--is-ancestor", a, b], cwd=store.repo.root).returncode == 0


def state(store: EventStore, tip: str | None) -> tuple[str | None, dict]:
    """(root tree id, {message id: (status, claim)}) of a mailbox tip."""
    if tip is None:
        return None, {}
    tree = store.tree_of(tip)
    lines = msg.decode_summary_blobs(store.collect(tree, name=mailbox.INDEX))
    return tree, {line["id"]: (line["status"], line.get("claim")) for line in lines}


def expected(*histories: list[tuple[str, int]], base: list[tuple[str, int]]) -> dict:
    """What a lossless merge must hold: every delivered message, its furthest status, and
    of two clones' claims the same one whatever the order (the smaller name)."""
    out: dict[str, tuple[str, str | None]] = {}
    for steps in histories:
        seen: dict[str, tuple[str, str | None]] = {}
        for op, k in base + steps:
            mid = message(k)["id"]
            if op == "new":
                seen.setdefault(mid, ("new", None))
            elif mid in seen and op.startswith("claim:"):
                seen[mid] = (seen[mid][0], seen[mid][1] or op[6:])
            elif mid in seen:
                seen[mid] = (msg.later_status(seen[mid][0], op), seen[mid][1])
        for mid, (status, claim) in seen.items():
            before = out.get(mid, ("new", None))
            claims = sorted(c for c in (before[1], claim) if c)
            out[mid] = (msg.later_status(before[0], status), claims[0] if claims else None)
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(base=ops, a=ops, b=ops, c=ops)
def test_mailbox_merges_are_commutative_associative_idempotent_and_lossless(store, base, a, b, c):
    root = build(store, None, base)
    ta, tb, tc = (build(store, root, steps) for steps in (a, b, c))
    ab, ba = merged(store, ta, tb), merged(store, tb, ta)
    assert state(store, ab) == state(store, ba)
    assert state(store, merged(store, ab, tc)) == state(store, merged(store, ta, merged(store, tb, tc)))
    assert state(store, merged(store, ab, ab)) == state(store, ab)
    if ab is not None:  # merging a state with itself changes nothing, down to the tree
        assert state(store, entity.merge_tips(store, mailbox.KIND, "refs/aipass/mail/api", ab, ab, WHO)[0])[0] == state(store, ab)[0]
    assert state(store, merged(store, ab, tc))[1] == expected(a, b, c, base=base)


def test_a_merge_commit_keeps_both_histories(store):
    root = build(store, None, [("new", 1)])
    ours = build(store, root, [("new", 2), ("read", 1)])
    theirs = build(store, root, [("new", 3), ("done", 1)])
    tip = entity.merge_tips(store, mailbox.KIND, "refs/aipass/mail/api", ours, theirs, WHO)[0]
    parents = git(store.repo.root, "log", "-1", "--format=%P", tip).split()
    assert parents == [ours, theirs]
    subject = git(store.repo.root, "log", "-1", "--format=%s", tip)
    assert subject == "mailbox: merge api (1 message and 1 status from the other side)"
    assert state(store, tip)[1] == {message(1)["id"]: ("done", None), message(2)["id"]: ("new", None), message(3)["id"]: ("new", None)}


def diverged_pr(store: EventStore, one: tuple[str, dict], other: tuple[str, dict]) -> tuple[dict, str, str]:
    """A PR record opened once, then changed two ways on two scratch refs: (the PR, ref, ref)."""
    pr = record.new(agent="api", branch="aipass/api", base="main", head="a" * 40, title="t", body="")
    opened = store.append(f"refs/test/pr{next(_counter)}", record.event("opened", WHO, {}, create=pr))
    refs = [f"refs/test/pr{next(_counter)}" for _ in range(2)]
    for ref, (event, change) in zip(refs, (one, other)):
        store.refs.apply([entity_update(ref, opened)])
        store.append(ref, record.event(event, WHO, change))
    return pr, refs[0], refs[1]


def test_pr_records_merge_to_the_one_further_along(store):
    import json

    from aipass_git.store.tree_view import TreeView

    _, merged_ref, bounced_ref = diverged_pr(store, ("merged", {"state": "merged", "merge_commit": "b" * 40}),
                                             ("bounced", {"state": "bounced", "reason": "conflict"}))
    for ours, theirs in ((merged_ref, bounced_ref), (bounced_ref, merged_ref)):
        tip = entity.merge_tips(store, record.KIND, "refs/aipass/prs/x", store.tip(ours), store.tip(theirs), WHO)[0]
        doc = json.loads(TreeView(store, store.tree_of(tip)).read(record.FILE))
        assert doc["state"] == "merged" and doc["merge_commit"] == "b" * 40
        record.parse(TreeView(store, store.tree_of(tip)).read(record.FILE), doc["id"])


def test_a_retried_phase_merges_as_its_later_attempt_and_unblocks_the_plan(store):
    import json

    from aipass_git.plans import plan as plan_mod
    from aipass_git.store.tree_view import TreeView

    doc = plan_mod.new(title="t", template="build", owner="devpulse", created_by="human", living=False,
                       phases=[{"name": "build", "owner": "api", "task": "b"}, {"name": "docs", "owner": "docs", "task": "d"}])
    base = store.append(f"refs/test/plan{next(_counter)}", plan_mod.created(doc, WHO))
    retried_ref, stale_ref = f"refs/test/plan{next(_counter)}", f"refs/test/plan{next(_counter)}"
    for ref in (retried_ref, stale_ref):
        store.refs.apply([entity_update(ref, base)])
        store.append(ref, plan_mod.started(doc["id"], "build", WHO))
        store.append(ref, plan_mod.finished(doc["id"], "build", "failed", WHO, "devpulse", "crashed"))
    store.append(retried_ref, plan_mod.retried(doc["id"], "build", WHO, "human"))
    store.append(stale_ref, plan_mod.note(doc["id"], "docs", "still blocked here", WHO))
    for ours, theirs in ((retried_ref, stale_ref), (stale_ref, retried_ref)):
        tip = entity.merge_tips(store, plan_mod.KIND, plan_mod.ref_for(doc["id"]), store.tip(ours), store.tip(theirs), WHO)[0]
        data = TreeView(store, store.tree_of(tip)).read(plan_mod.FILE)
        got = plan_mod.parse(data, doc["id"])
        assert got["state"] == "open" and got["phases"][0]["state"] == "waiting" and got["phases"][0]["attempt"] == 2
        assert "still blocked here" in [n["text"] for n in got["notes"]]
        assert json.loads(data) == got


def test_a_side_whose_record_breaks_the_schema_is_named_and_nothing_is_merged(store):
    from aipass_git.core.errors import AipassError

    # the forged side says what anyone who can push could write
    pr, good, forged = diverged_pr(store, ("closed", {"state": "closed"}), ("merged", {"state": "bogus"}))
    objects = git(store.repo.root, "count-objects", "-v")
    for ours, theirs in ((good, forged), (forged, good)):
        with pytest.raises(AipassError) as info:
            entity.merge_tips(store, record.KIND, f"refs/aipass/prs/{pr['id']}", store.tip(ours), store.tip(theirs), WHO)
        assert f"refs/aipass/prs/{pr['id']}:pr.json" in info.value.message and "state" in info.value.message
    assert git(store.repo.root, "count-objects", "-v") == objects  # no merge commit was written
