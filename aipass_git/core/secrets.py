"""Strings that look like credentials: API keys, tokens, private keys, secret assignments.

Checked before anything is committed (mail, memory, commit subjects: a secret in git
history stays there), and by the audit on files, .aipass documents, mail and commit
messages. A rule set of our own: detect-secrets' plugins were measured here at ~120 ms to
import, more than a whole `git aipass send` costs, and flag plain words as high-entropy
strings unless its filter pipeline runs too.
"""

from __future__ import annotations

import math
import re
from collections import Counter

from aipass_git.core.errors import RefusedError
from aipass_git.core.text import article

PATTERNS = {
    "private key": re.compile(r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY(?: BLOCK)?-----"),
    "AWS access key": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b|\bgithub_pat_[A-Za-z0-9_]{40,}\b"),
    "Anthropic key": re.compile(r"\bsk-ant-[A-Za-z0-9_-]{20,}"),
    "OpenAI key": re.compile(r"\bsk-(?:proj-)?[A-Za-z0-9_-]{32,}"),
    "Google API key": re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"),
    "Slack token": re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"),
}
# `AWS_SECRET_ACCESS_KEY = "..."`, `db_password: ...`, `API_TOKEN=...`: a name with one of
# these words as a part, then a value; only a value that looks random counts.
_ASSIGNED = re.compile(
    r"(?i)\b[a-z0-9_.-]*(?:secret|token|passw(?:or)?d|pwd|api[_-]?key|access[_-]?key|private[_-]?key|credentials?)"
    r"[a-z0-9_.-]*[\"']?\s*[:=]\s*[\"']?([^\s\"'`,;]{12,})"
)
ASSIGNED = "secret assignment"
# Words of which every text `find` flags holds one (ignoring case): the commit-msg hook
# greps for them in the shell (an ERE) and starts Python only on a hit.
ANCHORS = ("private key|akia|asia|gh[pousr]_|github_pat_|sk-|aiza|xox|"
           "secret|token|passw|pwd|api.?key|access.?key|private.?key|credential")
HINT = "remove it (and rotate it if it is real); if it is not a secret, repeat with --allow-secret, which is recorded"


def entropy(value: str) -> float:
    """Shannon entropy in bits per character."""
    counts = Counter(value)
    return -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())


def _random_looking(value: str) -> bool:
    return (len(value) >= 20 and entropy(value) >= 3.0) or (len(value) >= 12 and entropy(value) >= 3.3)


def find(text: str) -> list[str]:
    """Names of the kinds of secret TEXT appears to contain."""
    found = [name for name, pattern in PATTERNS.items() if pattern.search(text)]
    if any(_random_looking(m.group(1)) for m in _ASSIGNED.finditer(text)):
        found.append(ASSIGNED)
    return found


def check(what: str, *texts: str, allow: bool = False) -> list[str]:
    """The kinds of secret TEXTS appear to hold; refused (exit 2, naming WHAT) unless ALLOW,
    when the caller records them with what it writes."""
    found = sorted({kind for t in texts for kind in find(t)})
    if found and not allow:
        shown = ", ".join(article(k) for k in found)
        raise RefusedError(f"{what} looks like it holds {shown}; nothing was written", HINT)
    return found


def redact(text: str) -> str:
    """TEXT with each secret replaced by `[redacted: <kind>]` (for text the tool writes
    itself from an agent's output: a bounce's stderr)."""
    for name, pattern in PATTERNS.items():
        text = pattern.sub(f"[redacted: {name}]", text)
    return _ASSIGNED.sub(lambda m: m.group(0).replace(m.group(1), f"[redacted: {ASSIGNED}]")
                         if _random_looking(m.group(1)) else m.group(0), text)
