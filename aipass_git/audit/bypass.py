"""`.aipass/audit-bypass.yaml`: reviewed exceptions to the standards.

    - standard: python.no-debug-leftovers
      path: scripts/*.py
      reason: these scripts talk to the terminal on purpose
      expires: 2027-01-31        # optional

A bypass needs a standard, a path glob and a reason. One that has expired no longer
suppresses anything and is a finding itself; so is one that suppresses nothing.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
from dataclasses import dataclass

from aipass_git.audit.engine import Finding
from aipass_git.core.documents import load_yaml
from aipass_git.core.errors import ValidationError
from aipass_git.core.files import read as read_doc
from aipass_git.core.repo import AIPASS_DIR, Repo
from aipass_git.core.validate import List, Obj, Str, validate

FILE = f"{AIPASS_DIR}/audit-bypass.yaml"
SPEC = List(Obj(
    required={"standard": Str(max_len=100, one_line=True), "path": Str(max_len=500, one_line=True),
              "reason": Str(max_len=500)},
    optional={"expires": Str(pattern=r"\d{4}-\d\d-\d\d", expected="a date like 2027-01-31")},
))


@dataclass
class Bypass:
    index: int
    standard: str
    path: str
    reason: str
    expires: str | None
    used: int = 0

    def expired(self, today: dt.date) -> bool:
        return self.expires is not None and dt.date.fromisoformat(self.expires) < today

    def covers(self, finding: Finding) -> bool:
        return fnmatch.fnmatchcase(finding.standard, self.standard) and fnmatch.fnmatchcase(finding.path, self.path)


def load(repo: Repo) -> list[Bypass]:
    data = read_doc(repo.root, FILE)  # a link is refused, never followed
    if data is None:
        return []
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationError(FILE, None, "is not UTF-8 text", "fix the file") from None
    raw = load_yaml(text, FILE, "fix the file") or []
    for item in raw if isinstance(raw, list) else []:
        if isinstance(item, dict) and isinstance(item.get("expires"), dt.date):
            item["expires"] = item["expires"].isoformat()  # YAML reads 2027-01-31 as a date
    validate(raw, SPEC, FILE, "each entry needs standard, path and reason; expires is optional")
    return [Bypass(i, r["standard"], r["path"], r["reason"], r.get("expires")) for i, r in enumerate(raw)]


def apply(findings: list[Finding], bypasses: list[Bypass], today: dt.date | None = None) -> tuple[list[Finding], list[Finding]]:
    """(findings kept, findings suppressed), with findings about the bypasses themselves added."""
    today = today or dt.date.today()
    kept, suppressed = [], []
    live = [b for b in bypasses if not b.expired(today)]
    for finding in findings:
        match = next((b for b in live if b.covers(finding)), None)
        if match is None:
            kept.append(finding)
        else:
            match.used += 1
            suppressed.append(finding)
    for b in bypasses:
        where = f"{FILE}"
        if b.expired(today):
            kept.append(Finding(where, b.index + 1, "audit.bypass-expired", "error",
                                f"bypass of {b.standard} for {b.path} expired on {b.expires}",
                                "fix what it excused, or renew it with a reason"))
        elif b.used == 0:
            kept.append(Finding(where, b.index + 1, "audit.bypass-unused", "warning",
                                f"bypass of {b.standard} for {b.path} matches no finding",
                                "remove it: an unused exception only hides the next real problem"))
    return sorted(kept), sorted(suppressed)
