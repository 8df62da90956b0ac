"""Agent names: what is allowed, and the `@name` spelling accepted wherever a name is."""

from __future__ import annotations

import re

from aipass_git.core.errors import InvalidNameError

MAX_LENGTH = 32
HUMAN = "human"  # the mailbox and speaker name of the person at the keyboard
_NAME = re.compile(r"[a-z][a-z0-9_-]*\Z")

# Words with a meaning of their own in addresses (@all, @human), in refs and branches
# (refs/aipass/<kind>/<name>, aipass/<name>), or that would read as a command.
RESERVED = frozenset(
    {
        "aipass", "agent", "agents", "all", "any", "anyone", "everyone", "git", "head",
        "heads", "human", "humans", "me", "mail", "nobody", "none", "null", "orchestrator",
        "origin", "plans", "prs", "refs", "remotes", "root", "self", "system", "tags",
        "template", "templates", "user",
    }
)

RULES_HINT = (
    "a name starts with a lower-case letter, then lower-case letters, digits, '-' or '_', "
    f"at most {MAX_LENGTH} characters, e.g. quality or api-docs"
)


def strip_at(raw: str) -> str:
    """`@quality` -> `quality`: the `@` spelling is accepted wherever a name is."""
    return raw[1:] if raw.startswith("@") else raw


def normalize(raw: str) -> str:
    """The agent name RAW refers to (`@quality` -> `quality`); refuses anything invalid."""
    name = strip_at(raw)
    shown = repr(raw) if len(raw) <= 40 else repr(raw[:40] + "...")
    if not name:
        raise InvalidNameError("agent name is empty", RULES_HINT)
    if len(name) > MAX_LENGTH:
        raise InvalidNameError(f"agent name {shown} is {len(name)} characters long (at most {MAX_LENGTH})", RULES_HINT)
    if not _NAME.match(name):
        raise InvalidNameError(f"agent name {shown} is not allowed ({_reason(name)})", RULES_HINT)
    if name in RESERVED:
        raise InvalidNameError(
            f"agent name {shown} is reserved", "choose another name; reserved: " + ", ".join(sorted(RESERVED))
        )
    return name


def _reason(name: str) -> str:
    if not name[0].isascii() or not name[0].isalpha():
        return "it must start with a letter a-z"
    if name.lower() != name and name.lower() == name.casefold() and _NAME.match(name.lower()):
        return "upper case; use lower case"
    bad = sorted({c for c in name if not (c.isascii() and (c.islower() or c.isdigit() or c in "-_"))})
    return "characters not allowed: " + " ".join(repr(c) for c in bad)


def is_valid(name: str) -> bool:
    try:
        return normalize(name) == name
    except InvalidNameError:
        return False
