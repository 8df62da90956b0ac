"""`git aipass audit`: choose the files and the standards, run, apply the bypasses; and
the audit the merge queue runs on a merged tree."""

from __future__ import annotations

from typing import Callable

from pathlib import Path

from aipass_git.audit import bypass, documents, project
from aipass_git.audit.engine import Context, Finding, Report, Standard, describe, run
from aipass_git.audit.standards import BUILTIN
from aipass_git.core import config as config_mod, git, schemas
from aipass_git.core.errors import AipassError
from aipass_git.core.repo import AIPASS_DIR, Repo


def standards_of(ctx: Context, only: list[str] | None = None) -> tuple[list[Standard], list[project.Module], list[Finding]]:
    """The standards an audit of CTX runs (the built-ins, then the project's as declared),
    those whose id starts with one of ONLY when given; the project modules; and what keeps
    project standards from running."""
    mods, problems = project.modules(ctx)
    problems += [p for m in mods for p in m.problems]
    every = BUILTIN + [s for m in mods for s in m.standards]
    chosen = every if not only else [s for s in every if any(s.id.startswith(p) for p in only)]
    return chosen, mods, problems


def changed_files(repo: Repo, base: str) -> list[str]:
    """Files that differ between BASE's merge base with HEAD and the work tree, plus new ones."""
    merge_base = git.merge_base(repo.root, base, "HEAD") or base
    changed = git.changed_files(repo.root, merge_base) + git.untracked_files(repo.root)
    return sorted({p for p in changed if (repo.root / p).is_file()})


def audit(repo: Repo, *, paths: list[str] | None = None, agent: str | None = None, changed: str | None = None,
          staged: bool = False, only: list[str] | None = None,
          progress: Callable[[int, int], None] | None = None) -> Report:
    """CHANGED: only files changed since that base ("" for the configured base branch).
    PROGRESS hears (built-in standards done, total)."""
    base = None
    if changed is not None:
        base = changed or config_mod.load(repo).base_branch
        paths = changed_files(repo, base)
    elif paths is not None:
        paths = _expand(repo, paths)
    ctx = Context(repo, paths=paths, agent=agent, staged=staged, base=base)
    chosen, mods, problems = standards_of(ctx, only)
    if changed is not None:
        chosen = for_changed(chosen, paths or [])
    builtin = {s.id for s in BUILTIN}
    worker = project.Worker(ctx, mods, {s.id for s in chosen if s.id not in builtin}, _standards_seconds(repo))
    findings = run(ctx, [s for s in chosen if s.id in builtin], progress) + worker.findings() + problems
    kept, suppressed = bypass.apply(findings, bypass.load(repo))
    return Report(kept, chosen, suppressed)


def _standards_seconds(repo: Repo) -> float:
    try:
        return config_mod.load(repo).timeouts["standards_seconds"]
    except AipassError:  # a broken config is the aipass.config standard's finding, not a reason to stop
        return schemas.TIMEOUT_DEFAULTS["standards_seconds"]


def audit_merge(repo: Repo, tree: str, base: str) -> list[str]:
    """Errors of the merged TREE against BASE, one line each: the file standards and the
    .aipass documents' validity, on what the merge changes (the merge queue's gate)."""
    changed = git.changed_files(repo.root, base, tree, only="ACMR")
    if not changed:
        return []
    ctx = Context(repo, paths=changed, tree=tree)
    standards = [s for s in BUILTIN if s.scope == "file" or s.id in ("aipass.archive", "secrets.aipass")]
    findings = documents.validate(changed, ctx.read)  # before run(), which closes the reader
    findings += [f for f in run(ctx, standards) if f.severity == "error"]
    return [line.split("\n")[0] for line in describe(findings)]


def for_changed(standards: list[Standard], changed: list[str]) -> list[Standard]:
    """`--changed` reviews files: the file standards, and the .aipass ones when .aipass
    changed. Refs and branch rules belong to the full audit and the push hook."""
    touches_aipass = any(p.startswith(AIPASS_DIR + "/") for p in changed)
    return [s for s in standards if s.scope == "file" or (touches_aipass and s.id.startswith(("aipass.", "ownership.", "secrets.aipass", "hygiene.")))]


def _expand(repo: Repo, paths: list[str]) -> list[str]:
    """Given paths (files or folders, relative to the cwd) as tracked files under them."""
    cwd = Path.cwd()
    return sorted(git.tracked_files(repo.root, [str((cwd / p).resolve()) for p in paths]))
