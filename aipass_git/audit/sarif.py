"""SARIF 2.1.0 for code scanning (GitHub and others)."""

from __future__ import annotations

from typing import Any

from aipass_git import __version__
from aipass_git.audit.engine import Report

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"


def to_sarif(report: Report) -> dict[str, Any]:
    rules = {s.id: s for s in report.standards}
    rule_ids = sorted(set(rules) | {f.standard for f in report.findings})
    results = []
    for f in report.findings:
        location: dict[str, Any] = {"artifactLocation": {"uri": f.path}}
        if f.line > 0:
            location["region"] = {"startLine": f.line}
        results.append({
            "ruleId": f.standard,
            "ruleIndex": rule_ids.index(f.standard),
            "level": f.severity,
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
                    "defaultConfiguration": {"level": rules[rid].severity if rid in rules else "error"},
                } for rid in rule_ids],
            }},
            "results": results,
        }],
    }
