"""What a repeat audit need not read again: per standard, the mailbox tips it last found
clean. Delivered messages never change (statuses move, bodies do not), so a mailbox whose
tip has not moved is clean still, and one that moved needs only its new messages read.
The record lives in `<common dir>/aipass/audit/<standard>.json`, is derived (deleting it
costs one slow audit), and is keyed by the aipass-git version, so a release with new
checks reads everything again. A mailbox with findings is never recorded: it is reported
on every audit until it is fixed.
"""

from __future__ import annotations

import json
from typing import Any

from aipass_git import __version__
from aipass_git.core.canonical import encode, write_derived
from aipass_git.core.repo import Repo


class Checked:
    def __init__(self, repo: Repo, standard: str) -> None:
        self.path = repo.runtime_dir / "audit" / f"{standard}.json"
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            doc = {}
        self.clean: dict[str, str] = doc.get("clean", {}) if isinstance(doc, dict) and doc.get("version") == __version__ else {}
        self.changed = False

    def tip(self, owner: str) -> str | None:
        """The tip OWNER's mailbox was last found clean at."""
        return self.clean.get(owner)

    def mark(self, owner: str, tip: str | None) -> None:
        """OWNER's mailbox is clean at TIP (None: it is not, or no longer known)."""
        if self.clean.get(owner) != tip:
            self.changed = True
            if tip is None:
                self.clean.pop(owner, None)
            else:
                self.clean[owner] = tip

    def moved(self, store, tips: dict[str, str]) -> dict[str, tuple[str | None, str]]:
        """Owner -> (the tip found clean, its tip now) of each mailbox of TIPS that moved
        since; the first is None when never found clean, or when the repository lost that
        commit (a forced fetch): then the mailbox is read whole again."""
        return {owner: (found if found and store.reader.resolve(found) else None, tip)
                for owner, tip in tips.items() if (found := self.clean.get(owner)) != tip}

    def save(self) -> None:
        if self.changed:
            doc: dict[str, Any] = {"version": __version__, "clean": self.clean}
            write_derived(self.path, encode(doc))
