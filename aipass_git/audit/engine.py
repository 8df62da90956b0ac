"""Standards, findings, and running them.

A standard is a small declaration: an id, a one-line description, a scope (repository,
agent or file), a severity, and a check that yields findings. A standard that crashes is
reported as a finding of its own (never silently skipped: a checker that cannot run must
not read as a pass). Findings come back sorted, so two runs print the same report.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any, Callable, Iterable

from aipass_git.core import git
from aipass_git.core.errors import AipassError
from aipass_git.core.repo import AIPASS_DIR, Repo
from aipass_git.agents import ownership
from aipass_git.agents.registry import Registry
from aipass_git.core import config as config_mod
from aipass_git.store.objects import ObjectReader

SEVERITIES = ("error", "warning", "info")

@dataclass(frozen=True, order=True)
class Finding:
    path: str
    line: int
    standard: str
    severity: str
    message: str
    hint: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Problem:
    """What a check yields; the engine stamps it with the standard's id and severity."""
    path: str
    message: str
    hint: str = ""
    line: int = 0
    severity: str | None = None


@dataclass(frozen=True)
class Standard:
    id: str
    description: str
    scope: str  # repository | agent | file
    severity: str
    check: Callable[["Context"], Iterable[Problem]] = field(compare=False, repr=False)


def standard(id: str, description: str, *, scope: str = "repository", severity: str = "error"):
    """Declare a standard: `@standard("x.y", "one line")` over `def check(ctx): yield Problem(...)`."""
    if severity not in SEVERITIES:
        raise ValueError(f"standard {id}: severity {severity!r} is not one of {', '.join(SEVERITIES)}")

    def wrap(check: Callable[["Context"], Iterable[Problem]]) -> Standard:
        return Standard(id, description, scope, severity, check)

    return wrap


class Context:
    """What a standard may look at: the work tree, git, the config, the agents.

    Everything is read lazily and once; `paths` limits file-scoped standards to the files
    under review (a commit's staged files, a push's range, or given paths).
    """

    def __init__(self, repo: Repo, *, paths: list[str] | None = None, agent: str | None = None,
                 staged: bool = False, base: str | None = None, tree: str | None = None) -> None:
        self.repo = repo
        self.only_paths = paths
        self.agent = agent
        self.staged = staged  # read file contents from the index (pre-commit), not the work tree
        self.base = base
        self.tree = tree  # read file contents from this tree (a merge being checked), not the work tree
        self._reader = None

    @cached_property
    def config(self):

        return config_mod.load(self.repo)

    @cached_property
    def registry(self):

        return Registry(self.repo)

    @cached_property
    def agents(self) -> list:
        """Every agent that loads (broken passports are the aipass.passport standard's)."""
        return [found for _name, found in self.registry.each()
                if not isinstance(found, AipassError) and (self.agent is None or found.name == self.agent)]

    @cached_property
    def aipass_refs(self) -> list[tuple[str, str]]:
        """(refname, type of its object) of every ref under refs/aipass/."""
        return git.ref_types(self.repo.root, "refs/aipass/")

    @cached_property
    def tracked(self) -> list[str]:
        """Files of the work tree git knows or would add: tracked, plus new ones not ignored."""
        return sorted(set(git.tracked_files(self.repo.root, untracked=True)))

    @cached_property
    def files(self) -> list[str]:
        """The files under review, relative to the root."""
        if self.only_paths is None:
            return self.tracked
        return sorted(set(self.only_paths))

    def read(self, rel: str) -> bytes | None:
        """A file as the audit sees it: from the merge tree, the index, or the work tree."""
        if self.tree is not None:
            return self.git_object(f"{self.tree}:{rel}")
        if self.staged:
            return self.git_object(f":{rel}")
        path = self.repo.root / rel
        if path.is_symlink():
            # what git stores for a link: its target's name, never the file it points at
            return os.readlink(path).encode("utf-8", "surrogateescape")
        try:
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None

    def git_object(self, spec: str) -> bytes | None:
        """The blob SPEC names (`:path`, `tree:path`, `rev:path`), or None; through one
        long-lived cat-file for the whole audit, and read once."""
        cache = self.__dict__.setdefault("_blobs", {})
        if spec not in cache:
            if self._reader is None:

                self._reader = ObjectReader(self.repo.root)
            [found] = self._reader.read_many([spec], missing_ok=True)
            cache[spec] = found[1] if found is not None and found[0] == "blob" else None
        return cache[spec]

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def text(self, rel: str) -> str | None:
        data = self.read(rel)
        if data is None or b"\0" in data[:8192]:
            return None  # binary files are not text standards' business
        return data.decode("utf-8", "replace")

    def aipass_files(self) -> list[str]:
        return [f for f in self.files if f.startswith(AIPASS_DIR + "/")]

    @cached_property
    def known_files(self) -> list[str]:
        """Tracked files and the files under review (which may be new)."""
        return sorted(set(self.tracked) | set(self.files))

    def owned_by(self, agent) -> list[str]:
        cache = self.__dict__.setdefault("_owned", {})
        if agent.name not in cache:
            pattern = ownership.pattern(agent.owns)
            cache[agent.name] = [f for f in self.known_files if pattern.match(f)] if agent.owns else []
        return cache[agent.name]


@dataclass
class Report:
    findings: list[Finding]
    standards: list[Standard]
    suppressed: list[Finding] = field(default_factory=list)

    @property
    def errors(self) -> int:
        return sum(f.severity == "error" for f in self.findings)


def run(context: Context, standards: list[Standard], progress: Callable[[int, int], None] | None = None) -> list[Finding]:
    """Every finding of STANDARDS; PROGRESS hears (standards done, total)."""
    try:
        return _run(context, standards, progress)
    finally:
        context.close()


def _run(context: Context, standards: list[Standard], progress: Callable[[int, int], None] | None) -> list[Finding]:
    findings: list[Finding] = []
    for done, std in enumerate(standards):
        if progress:
            progress(done, len(standards))
        try:
            for p in std.check(context):
                findings.append(Finding(p.path, p.line, std.id, p.severity or std.severity, p.message, p.hint))
        except Exception as exc:  # noqa: BLE001 - a crashed check is a finding, never a pass
            findings.append(Finding(
                ".", 0, "audit.crashed", "error",
                f"standard {std.id} crashed: {type(exc).__name__}: {exc}",
                "fix the standard (or the file it choked on); until then this counts as a failure",
            ))
    return sorted(set(findings))


def describe(findings: list[Finding]) -> list[str]:
    """The errors among FINDINGS as lines for a person: `path:line: message [standard]` and
    a hint line (what the hooks print and the merge queue records)."""
    return [f"{f.path}{':' + str(f.line) if f.line else ''}: {f.message} [{f.standard}]" + (f"\nhint: {f.hint}" if f.hint else "")
            for f in findings if f.severity == "error"]
