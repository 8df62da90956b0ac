"""One clone's traffic for the sync tests, run as its own process: sends, reads and
closes in random order (seeded), with syncs in between; records what it did as JSON.

    python sync_worker.py CLONE SEED STEPS OUT.json
"""

import json
import random
import sys
from pathlib import Path

from aipass_git.core.errors import AipassError
from aipass_git.core.repo import discover
from aipass_git.mail import mailbox
from aipass_git.mail.postoffice import PostOffice
from aipass_git.store.events import EventStore
from aipass_git.sync import cycle

OWNERS = ("api", "docs", "human")


def main(clone: str, seed: int, steps: int, out: str) -> None:
    rng = random.Random(seed)
    repo = discover(Path(clone))
    sent, marks = [], []
    for step in range(steps):
        roll = rng.random()
        owner = rng.choice(OWNERS)
        if roll < 0.45:
            with PostOffice(repo) as po:
                [m] = po.send([f"@{owner}"], f"{Path(clone).name} {step}", "body")
            sent.append(m["id"])
        elif roll < 0.85:
            with EventStore(repo) as store:
                lines = mailbox.MailboxReader(store, owner).summaries()
            if not lines:
                continue
            line = rng.choice(lines)
            status = rng.choice(("read", "done"))
            with PostOffice(repo, act_as=None if owner == "human" else f"@{owner}") as po:
                po.mark([line["id"]], status)
            marks.append([owner, line["id"], status])
        else:
            try:
                cycle.sync(repo)
            except AipassError as exc:  # a lost race is retried by the next sync
                print(exc.message, file=sys.stderr)
    Path(out).write_text(json.dumps({"sent": sent, "marks": marks}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
