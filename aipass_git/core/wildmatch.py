"""Git's wildmatch (as .gitignore and `:(glob)` pathspecs read globs), compiled to a regex.

`*` and `?` stop at `/`; `**` as a whole component crosses directories (`**/x` at any
depth, `a/**` everything inside a, `a/**/b` zero or more folders between); `[...]` is a
class (`!` or `^` negates) that never matches `/`; a backslash escapes. A glob with no
wildcard names a path or a folder: it covers everything under it, as a pathspec does.
"""

from __future__ import annotations

import re

SPECIAL = "*?[\\"


def literal_prefix(glob: str) -> str:
    """The folder part before the first wildcard, with its trailing slash ("src/api/" of
    "src/api/*.py", "" of "**/*.py"): every path the glob matches starts with it."""
    first = min((i for i, c in enumerate(glob) if c in SPECIAL), default=len(glob))
    return glob[: glob.rfind("/", 0, first) + 1]


def _class(glob: str, i: int) -> tuple[str, int] | None:
    """The regex of the class opening at I and the index after it; None if it never closes."""
    j = i + 1
    negate = j < len(glob) and glob[j] in "!^"
    if negate:
        j += 1
    start = j
    if j < len(glob) and glob[j] == "]":
        j += 1  # a leading ] is a member
    while j < len(glob) and glob[j] != "]":
        if glob.startswith("[:", j) and ":]" in glob[j + 2:]:
            j = glob.index(":]", j + 2) + 2
            continue
        j += 2 if glob[j] == "\\" else 1
    if j >= len(glob):
        return None
    # [:alpha:] and friends become ranges; what Python would read as a nested set or a
    # set operation ("[", "&&", "--", ...) is escaped
    body = re.sub(r"\[:(\w+):\]|\\.|[\[^&~|-]",
                  lambda m: _POSIX.get(m.group(1), m.group(0)) if m.group(1) else
                  m.group(0) if m.group(0).startswith("\\") or m.group(0) == "-" else "\\" + m.group(0),
                  glob[start:j])
    return (f"[^/{body}]" if negate else f"(?!/)[{body}]"), j + 1


_POSIX = {"alnum": "a-zA-Z0-9", "alpha": "a-zA-Z", "digit": "0-9", "lower": "a-z", "upper": "A-Z",
          "space": " \\t\\n\\r\\f\\v", "xdigit": "0-9A-Fa-f", "punct": "!-/:-@\\[-`{-~", "blank": " \\t"}


def translate(glob: str) -> str:
    """The regex (unanchored at the end) for GLOB's wildmatch."""
    out, i, n = [], 0, len(glob)
    while i < n:
        c = glob[i]
        if c == "*":
            whole = glob.startswith("**", i) and (i == 0 or glob[i - 1] == "/") and (i + 2 == n or glob[i + 2] == "/")
            if whole:
                out.append(".*" if i + 2 == n else "(?:.*/)?")
                i += 3
                continue
            while i < n and glob[i] == "*":
                i += 1
            out.append("[^/]*")
            continue
        if c == "?":
            out.append("[^/]")
        elif c == "[":
            found = _class(glob, i)
            if found is not None:
                out.append(found[0])
                i = found[1]
                continue
            out.append(re.escape(c))
        elif c == "\\" and i + 1 < n:
            out.append(re.escape(glob[i + 1]))
            i += 1
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def compile(glob: str, *, ignorecase: bool = False) -> "re.Pattern[str]":
    """GLOB as a pattern to `.match` whole paths against."""
    tail = r"(?:/.*)?\Z" if not any(c in SPECIAL for c in glob) or glob.endswith("/") else r"\Z"
    return re.compile(translate(glob.rstrip("/") if tail != r"\Z" else glob) + tail,
                      re.IGNORECASE if ignorecase else 0)
