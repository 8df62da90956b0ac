"""Which files an agent owns: its `owns` globs, matched against the repository's files.

`src/**` owns everything under src/ (the folder itself included); `src/*.py` the Python
files directly in it, as fnmatch reads them. One path has at most one active owner: the
audit's ownership.no-overlap standard checks it, and `agent new` refuses a glob that
would break it.
"""

from __future__ import annotations

import fnmatch
import re


def pattern(globs: list[str]) -> "re.Pattern[str]":
    """One compiled pattern for an agent's globs (a thousand files x thirty agents add up)."""
    parts = [fnmatch.translate(g) for g in globs]
    parts += [re.escape(g[:-2]) + r".*\Z" for g in globs if g.endswith("/**")]
    return re.compile("|".join(f"(?:{p})" for p in parts) or r"(?!)")


def first_shared(globs: list[str], other: list[str], files: list[str]) -> str | None:
    """A file both GLOBS and OTHER own, or a glob they both list; None when they share
    nothing (only files that exist can show an overlap of two different globs)."""
    same = sorted(set(globs) & set(other))
    if same:
        return same[0]
    mine, theirs = pattern(globs), pattern(other)
    return next((f for f in files if mine.match(f) and theirs.match(f)), None)
