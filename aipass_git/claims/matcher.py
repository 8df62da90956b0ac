"""Which active exclusive claim covers a path, for many paths against many claims.

A commit of 10,000 paths against 1,000 claims must not try every glob on every path:
claims are filed under the folder their glob starts with (wildmatch.literal_prefix), and
a path is tried only against the claims filed under one of its own folders (a handful
of dictionary lookups). Within a folder, the common shapes need no regex at all (`dir/**`
covers everything filed under it; a plain path covers itself and what is under it), and
the rest are tried as one combined regex per folder, compiled the first time a path
reaches that folder; only a hit looks for which claim it was.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Iterator

from aipass_git.core import wildmatch

Held = tuple[str, dict[str, Any]]  # (holder, claim)


class _Folder:
    """The claims filed under one folder prefix."""

    def __init__(self) -> None:
        self.everything: list[Held] = []  # `<folder>**`: every path filed here
        self.named: list[tuple[str, Held]] = []  # a plain path: itself, and under it
        self.names: list[tuple[str, Held]] = []  # `<folder>**/NAME`: the last part of the path, at any depth
        self.globs: list[tuple[str, Held]] = []  # the rest, as wildmatch globs on the whole path
        self.compiled: dict[str, tuple["re.Pattern[str]", list[tuple["re.Pattern[str]", Held]]]] = {}

    def covering(self, path: str, key: str, ignorecase: bool) -> Iterator[Held]:
        yield from self.everything
        for name, held in self.named:
            if key == name or key.startswith(name + "/"):
                yield held
        if self.names:
            yield from self._try("names", self.names, path[path.rfind("/") + 1:], ignorecase)
        if self.globs:
            yield from self._try("globs", self.globs, path, ignorecase)

    def _try(self, kind: str, globs: list[tuple[str, Held]], text: str, ignorecase: bool) -> Iterator[Held]:
        if kind not in self.compiled:
            each = [(wildmatch.compile(g, ignorecase=ignorecase), held) for g, held in globs]
            combined = re.compile("|".join(f"(?:{p.pattern})" for p, _ in each), re.IGNORECASE if ignorecase else 0)
            self.compiled[kind] = (combined, each)
        combined, each = self.compiled[kind]
        if combined.match(text):
            yield from (held for regex, held in each if regex.match(text))


class Matcher:
    def __init__(self, held: Iterable[Held], *, ignorecase: bool = False) -> None:
        self.ignorecase = ignorecase
        self.folders: dict[str, _Folder] = {}
        for holder, c in held:
            glob = c["glob"]
            prefix = wildmatch.literal_prefix(glob)
            fold = glob.lower() if ignorecase else glob
            folder = self.folders.setdefault(prefix.lower() if ignorecase else prefix, _Folder())
            rest = glob[len(prefix):]
            if rest == "**":
                folder.everything.append((holder, c))
            elif rest.startswith("**/") and "/" not in rest[3:] and "**" not in rest[3:]:
                folder.names.append((rest[3:], (holder, c)))
            elif not any(ch in wildmatch.SPECIAL for ch in glob):
                folder.named.append((fold.rstrip("/"), (holder, c)))
            else:
                folder.globs.append((glob, (holder, c)))

    def __bool__(self) -> bool:
        return bool(self.folders)

    def covering(self, path: str) -> Held | None:
        """The first claim whose glob matches PATH, or None."""
        return next(self.all_covering(path), None)

    def all_covering(self, path: str) -> Iterator[Held]:
        key = path.lower() if self.ignorecase else path
        for folder in self._folders_of(key[:key.rfind("/") + 1], {}):
            yield from folder.covering(path, key, self.ignorecase)

    def _folders_of(self, directory: str, memo: dict[str, list[_Folder]]) -> list[_Folder]:
        """The folders whose claims may cover a path in DIRECTORY: those filed under it or
        under one of its parents (remembered in MEMO: the paths of a commit share folders)."""
        found = memo.get(directory)
        if found is None:
            cuts = [0] + [i + 1 for i, ch in enumerate(directory) if ch == "/"]
            found = [f for cut in cuts if (f := self.folders.get(directory[:cut])) is not None]
            memo[directory] = found
        return found

    def first_crossing(self, paths: Iterable[str]) -> tuple[str, Held] | None:
        """(path, claim) of the first of PATHS that a claim covers."""
        if not self.folders:
            return None
        memo: dict[str, list[_Folder]] = {}
        for path in paths:
            key = path.lower() if self.ignorecase else path
            for folder in self._folders_of(key[:key.rfind("/") + 1], memo):
                found = next(folder.covering(path, key, self.ignorecase), None)
                if found is not None:
                    return path, found
        return None
