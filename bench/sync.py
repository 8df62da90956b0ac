"""Sync across clones: diverged mailboxes, fetches with the hooks installed, big merges.

Builds throw-away repositories (isolated HOME and git config): a clone A, a bare remote
over file://, and clones B, C, D of it. Prints wall times as median and p95:

1. `git aipass sync` in B when 100 and 1,000 mailboxes diverged: A and B each delivered
   one message to every mailbox and A synced first, so B fetches, merges each mailbox
   (a merge commit with both tips as parents) and pushes them all.
2. A plain `git fetch` of 1,000 updated mailbox refs (plain mail, no dispatch) into C with
   the hooks installed, D without hooks, and E with an empty reference-transaction hook:
   git starts that hook twice per ref (prepared, committed), so E is the floor any such
   hook pays on git 2.39.
3. The merge of two mailboxes of 10,000 messages each (one common message), in-process.

    python bench/sync.py [--quick]

`--quick` runs 100 mailboxes and 1,000 messages only.

Goals (from the sync issue): 1,000 diverged mailboxes synced in <= 5 s; the fetch with the
hooks <= 2x the fetch without.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import isolate, p95  # noqa: E402

from aipass_git.core.repo import discover  # noqa: E402
from aipass_git.mail import mailbox, message as msg  # noqa: E402
from aipass_git.store import entity  # noqa: E402
from aipass_git.store.events import EventStore  # noqa: E402
from aipass_git.store.objects import Ident  # noqa: E402

WHO = Ident("Bench", "bench@example.invalid")


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def aipass(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "aipass", *args], cwd=cwd, check=True, stdout=subprocess.DEVNULL)


def deliver_to_all(repo: Path, owners: list[str], tag: str, kind: str = "mail") -> None:
    """One message to each owner's mailbox, in one batch (one fast-import, one transaction)."""
    batch = []
    for owner in owners:
        m = msg.build(sender="human", recipient=owner, subject=f"{tag} {owner}", body="b", kind=kind)
        batch.append((mailbox.ref_for(owner), mailbox.deliver(m, WHO)))
    with EventStore(discover(repo)) as store:
        store.append_many(batch)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def show(label: str, values: list[float], unit: str = "s") -> None:
    print(f"{label:<58} median {statistics.median(values):7.2f} {unit}   p95 {p95(values):7.2f} {unit}   (n={len(values)})")


def setup(tmp: Path) -> tuple[Path, Path]:
    isolate(tmp)
    for role in ("AUTHOR", "COMMITTER"):
        os.environ[f"GIT_{role}_NAME"], os.environ[f"GIT_{role}_EMAIL"] = "Bench", "bench@example.invalid"
    a = tmp / "a"
    a.mkdir()
    git(a, "init", "-q", "-b", "main")
    git(a, "commit", "-q", "--allow-empty", "-m", "first")
    aipass(a, "init", "--no-hooks")
    remote = tmp / "remote.git"
    git(tmp, "init", "-q", "--bare", "-b", "main", str(remote))
    git(a, "remote", "add", "origin", remote.as_uri())
    git(a, "push", "-q", "origin", "main")
    return a, remote


def clone(tmp: Path, remote: Path, name: str, hooks: bool) -> Path:
    target = tmp / name
    aipass(tmp, "clone", *([] if hooks else ["--no-hooks"]), remote.as_uri(), str(target))
    return target


def diverged_syncs(tmp: Path, a: Path, remote: Path, count: int, runs: int) -> list[float]:
    owners = [f"box{i:04d}" for i in range(count)]
    deliver_to_all(a, owners, "base")
    aipass(a, "sync")
    b = clone(tmp, remote, f"b{count}", hooks=False)
    times = []
    for run in range(runs):
        deliver_to_all(a, owners, f"a{run}")
        deliver_to_all(b, owners, f"b{run}")
        aipass(a, "sync")
        out: list[str] = []
        times.append(timed(lambda: out.append(subprocess.run(["git", "aipass", "sync", "--json"], cwd=b, check=True,
                                                             capture_output=True, text=True).stdout)))
        report = json.loads(out[0])
        assert len(report["merged"]) == count and not report["apart"], report["apart"]
    return times


def hooked_fetches(tmp: Path, a: Path, remote: Path, count: int, runs: int) -> tuple[list[float], list[float], list[float]]:
    owners = [f"box{i:04d}" for i in range(count)]
    with_hooks, without, floor = (clone(tmp, remote, name, hooks=hooks) for name, hooks in
                                  (("c", True), ("d", False), ("e", False)))
    # git's own cost of starting a hook twice per ref (prepared, committed): an empty one
    empty = floor / ".git/hooks/reference-transaction"
    empty.write_text("#!/bin/sh\nexit 0\n")
    empty.chmod(0o755)
    on, off, bare = [], [], []
    for run in range(runs):
        deliver_to_all(a, owners, f"fetch{run}")
        aipass(a, "sync")
        on.append(timed(lambda: git(with_hooks, "fetch", "-q", "origin")))
        off.append(timed(lambda: git(without, "-c", "core.hooksPath=/dev/null", "fetch", "-q", "origin")))
        bare.append(timed(lambda: git(floor, "fetch", "-q", "origin")))
    return on, off, bare


def big_merge(tmp: Path, a: Path, size: int, runs: int) -> list[float]:
    repo = discover(a)
    ref = mailbox.ref_for("big")
    deliver_to_all(a, ["big"], "common")
    base = git(a, "rev-parse", ref)
    tips = []
    for side in ("x", "y"):
        git(a, "update-ref", ref, base)
        with EventStore(repo) as store:
            store.append_many([(ref, mailbox.deliver(msg.build(sender="human", recipient="big", subject=f"{side} {i}",
                                                               body="b"), WHO)) for i in range(size)])
        tips.append(git(a, "rev-parse", ref))
    times = []
    for _ in range(runs):
        with EventStore(repo) as store:  # cold: a new reader each time
            times.append(timed(lambda: entity.merge_tips(store, mailbox.KIND, ref, tips[0], tips[1], WHO)))
    with EventStore(repo) as store:
        merged, said = entity.merge_tips(store, mailbox.KIND, ref, tips[0], tips[1], WHO)
        held = len(mailbox.MailboxReader(store, "big").summaries())  # the ref still at tip y
    print(f"  merged {said}; one side held {held}")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    sizes = [100] if args.quick else [100, 1000]
    with tempfile.TemporaryDirectory(prefix="aipass-bench-sync-") as tmp_name:
        tmp = Path(tmp_name)
        a, remote = setup(tmp)
        for count in sizes:
            show(f"sync, {count:,} diverged mailboxes", diverged_syncs(tmp, a, remote, count, 5 if count <= 100 else 3))
        on, off, bare = hooked_fetches(tmp, a, remote, sizes[-1], 3)
        show(f"git fetch of {sizes[-1]:,} mailbox refs, hooks installed", on)
        show(f"git fetch of {sizes[-1]:,} mailbox refs, hooks off", off)
        show(f"git fetch of {sizes[-1]:,} mailbox refs, an empty hook", bare)
        print(f"  ratio of medians: {statistics.median(on) / statistics.median(off):.2f}x "
              f"(an empty hook: {statistics.median(bare) / statistics.median(off):.2f}x)")
        size = 1000 if args.quick else 10_000
        show(f"merge of two mailboxes of {size:,} messages each", big_merge(tmp, a, size, 5))


if __name__ == "__main__":
    main()
