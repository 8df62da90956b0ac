"""SARIF 2.1.0 for code scanning (GitHub and others)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from aipass_git import __version__
from aipass_git.audit.engine import Report

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
# SARIF's levels are none, note, warning and error: an informational finding is a note
LEVELS = {"error": "error", "warning": "warning", "info": "note"}


def uri(path: str) -> str:
    """PATH (relative, with forward slashes) as a URI reference: spaces, non-ASCII and
    reserved characters percent-encoded (UTF-8), the slashes kept; a name's bytes that
    are not UTF-8 are percent-encoded as they are."""
    return quote(path.encode("utf-8", "surrogateescape"), safe="/")


def to_sarif(report: Report) -> dict[str, Any]:
    rules = {s.id: s for s in report.standards}
    rule_ids = sorted(set(rules) | {f.standard for f in report.findings})
    results = []
    for f in report.findings:
        location: dict[str, Any] = {"artifactLocation": {"uri": uri(f.path)}}
        if f.line > 0:
            location["region"] = {"startLine": f.line}
        results.append({
            "ruleId": f.standard,
            "ruleIndex": rule_ids.index(f.standard),
            "level": LEVELS[f.severity],
            "message": {"text": f.message + (f" (hint: {f.hint})" if f.hint else "")},
            "locations": [{"physicalLocation": location}],
        })
    return {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "aipass-audit",
                "version": __version__,
                "informationUri": "https://pypi.org/project/aipass-git/",
                "rules": [{
                    "id": rid,
                    "shortDescription": {"text": rules[rid].description if rid in rules else rid},
                    "defaultConfiguration": {"level": LEVELS[rules[rid].severity] if rid in rules else "error"},
                } for rid in rule_ids],
            }},
            "results": results,
        }],
    }
