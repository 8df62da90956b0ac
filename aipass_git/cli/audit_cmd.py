"""`git aipass audit`: the standards, for people (a table), agents (JSON) and CI (SARIF)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import List, Optional

import typer

from aipass_git.audit import runner
from aipass_git.audit.engine import Context
from aipass_git.audit.sarif import to_sarif
from aipass_git.audit.standards import BUILTIN
from aipass_git.cli.app import commands
from aipass_git.cli.output import emit_json, progress, table
from aipass_git.core import names
from aipass_git.core.errors import RefusedError
from aipass_git.core.repo import discover
from aipass_git.core.text import for_terminal, plural

app = commands()


@app.command()
def audit(
    paths: Optional[List[str]] = typer.Argument(None, help="Only these files or folders (default: the whole repository)."),
    agent: Optional[str] = typer.Option(None, "--agent", metavar="@AGENT", help="Only this agent's files and records."),
    changed: bool = typer.Option(
        False, "--changed", help="Only files changed since --base (default: the base branch): the file standards, and the .aipass ones when .aipass changed."),
    base: Optional[str] = typer.Option(
        None, "--base", metavar="REV", help="With --changed: compare with this branch or commit instead of the base branch.",
        show_default=False,
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts and agents."),
    sarif: Optional[Path] = typer.Option(None, "--sarif", metavar="FILE", help="Also write SARIF 2.1.0 to FILE."),
    only: Optional[List[str]] = typer.Option(None, "--only", metavar="PREFIX", help="Only standards whose id starts with PREFIX, e.g. aipass. (repeatable)."),
    list_standards: bool = typer.Option(False, "--list", help="List the standards and exit."),
) -> None:
    """Check the repository against the standards; exit 1 when any error is found.

    Exceptions live in .aipass/audit-bypass.yaml (standard, path glob, reason, optional
    expiry); an expired or unused bypass is itself a finding.
    """


    repo = discover()
    if list_standards:
        # read from the project modules' syntax, never run: listing must not execute them
        chosen, _, problems = runner.standards_of(Context(repo), only)
        if as_json:
            emit_json({"v": 1, "standards": [{"id": s.id, "severity": s.severity, "scope": s.scope, "description": s.description,
                                              "builtin": s in BUILTIN} for s in chosen],
                       "problems": [p.as_dict() for p in problems]})
            return
        rows = [(s.id, s.severity, s.scope, s.description) for s in chosen]
        typer.echo(table(["STANDARD", "SEVERITY", "SCOPE", "DESCRIPTION"], rows, max_width=80))
        for p in problems:
            typer.echo(for_terminal(f"{p.severity}: {p.path}: {p.message}"), err=True)  # a file's name, its error
        return
    if base is not None and not changed:
        raise RefusedError("--base REV works with --changed", "add --changed: git aipass audit --changed --base REV")
    with progress("auditing") as bar:
        report = runner.audit(repo, paths=paths or None, agent=names.normalize(agent) if agent else None,
                              changed=(base or "") if changed else None, only=only, progress=bar)
    if sarif is not None:
        sarif.write_text(json.dumps(to_sarif(report), indent=2) + "\n", encoding="utf-8")
    if as_json:
        emit_json({"v": 1, "errors": report.errors, "findings": [f.as_dict() for f in report.findings],
                   "suppressed": len(report.suppressed), "standards": len(report.standards)})
    elif report.findings:
        rows = [(f.severity, f.standard, f"{f.path}:{f.line}" if f.line else f.path, f.message) for f in report.findings]
        typer.echo(table(["SEVERITY", "STANDARD", "WHERE", "MESSAGE"], rows, max_width=90))
        counts = Counter(f.severity for f in report.findings)
        typer.echo(f"{plural(counts['error'], 'error')}, {plural(counts['warning'], 'warning')}"
                   + (f", {plural(counts['info'], 'note')}" if counts["info"] else "")
                   + f" ({plural(len(report.standards), 'standard')}, {len(report.suppressed)} bypassed)")
    else:
        typer.echo(f"clean: {plural(len(report.standards), 'standard')}, {plural(len(report.suppressed), 'finding')} bypassed")
    if report.errors:
        raise typer.Exit(1)
