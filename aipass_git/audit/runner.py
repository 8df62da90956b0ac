"""`git aipass audit`: choose the files and the standards, run, apply the bypasses; and
the audit the merge queue runs on a merged tree."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from aipass_git.audit import bypass, documents
from aipass_git.audit.engine import Context, Finding, Report, Standard, describe, run
from aipass_git.audit.standards import BUILTIN
from aipass_git.core import config as config_mod, git
from aipass_git.core.repo import AIPASS_DIR, Repo

PROJECT_STANDARDS = f"{AIPASS_DIR}/standards"


def project_standards(repo: Repo) -> tuple[list[Standard], list[Finding]]:
    """Standards from `.aipass/standards/*.py` (each module lists its own in STANDARDS).

    They are code that runs, like any hook: review them as such. One that fails to load
    is a finding, never a silent skip.
    """
    found, problems = [], []
    folder = repo.root / PROJECT_STANDARDS
    for path in sorted(folder.glob("*.py")) if folder.is_dir() else []:
        rel = f"{PROJECT_STANDARDS}/{path.name}"
        try:
            spec = importlib.util.spec_from_file_location(f"aipass_project_standard_{path.stem}", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)  # type: ignore[union-attr]
            found.extend(s for s in getattr(module, "STANDARDS", []) if isinstance(s, Standard))
        except Exception as exc:  # noqa: BLE001 - reported as a finding
            problems.append(Finding(rel, 0, "audit.crashed", "error", f"could not load: {type(exc).__name__}: {exc}",
                                    "fix the module; until then the audit fails"))
    return found, problems


def changed_files(repo: Repo, base: str) -> list[str]:
    """Files that differ between BASE's merge base with HEAD and the work tree, plus new ones."""
    merge_base = git.merge_base(repo.root, base, "HEAD") or base
    changed = git.changed_files(repo.root, merge_base) + git.untracked_files(repo.root)
    return sorted({p for p in changed if (repo.root / p).is_file()})


def select(only: list[str] | None) -> list[Standard] | None:
    """The built-in standards whose id starts with one of ONLY (`--only aipass.`); all when None."""
    return None if not only else [s for s in BUILTIN if any(s.id.startswith(p) for p in only)]


def audit(repo: Repo, *, paths: list[str] | None = None, agent: str | None = None, changed: str | None = None,
          staged: bool = False, standards: list[Standard] | None = None) -> Report:
    """CHANGED: only files changed since that base ("" for the configured base branch)."""
    base = None
    if changed is not None:
        base = changed or config_mod.load(repo).base_branch
        paths = changed_files(repo, base)
    elif paths is not None:
        paths = _expand(repo, paths)
    ctx = Context(repo, paths=paths, agent=agent, staged=staged, base=base)
    extra, problems = project_standards(repo)
    chosen = (standards if standards is not None else BUILTIN) + extra
    if changed is not None:
        chosen = for_changed(chosen, paths or [])
    findings = run(ctx, chosen) + problems
    kept, suppressed = bypass.apply(findings, bypass.load(repo))
    return Report(kept, chosen, suppressed)


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
