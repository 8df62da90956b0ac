"""The process the project's standards run in (started by audit/project.py).

Reads a JSON request on stdin (the audit's context and the modules' sources), runs the
chosen standards and writes their findings as JSON to the stdout it was given. The
standards' own prints go to stderr, so nothing they print can pass for a finding.
"""

from __future__ import annotations

import json
import os
import sys
import types
from pathlib import Path

from aipass_git.audit.engine import Context, Finding, Standard, run
from aipass_git.core.repo import discover


def main() -> int:
    request = json.loads(sys.stdin.buffer.read().decode("utf-8", "surrogateescape"))
    report = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # from here on, fd 1 is stderr: a print is not a report
    sys.stdout = sys.stderr
    repo = discover(Path(request["root"]))
    findings: list[Finding] = []
    chosen: list[Standard] = []
    for module in request["modules"]:
        loaded, problem = _load(module["path"], module["source"])
        if problem is not None:
            findings.append(problem)
            continue
        wanted = set(module["standards"])
        chosen += [s for s in loaded if s.id in wanted]
    ctx = Context(repo, paths=request["paths"], agent=request["agent"], staged=request["staged"],
                  base=request["base"], tree=request["tree"])
    findings += run(ctx, chosen)
    json.dump({"findings": [f.as_dict() for f in findings]}, report)
    report.close()
    return 0


def _load(path: str, source: str) -> tuple[list[Standard], Finding | None]:
    """The Standard objects the module at PATH lists in STANDARDS, or why it did not load."""
    name = "aipass_project_standard_" + Path(path).stem
    module = types.ModuleType(name)
    module.__file__ = path
    sys.modules[name] = module
    try:
        exec(compile(source, path, "exec"), module.__dict__)  # noqa: S102 - project standards are code, by design
    except BaseException as exc:  # noqa: BLE001 - reported as a finding, and SystemExit must not end the audit
        return [], Finding(path, 0, "audit.crashed", "error", f"could not load: {type(exc).__name__}: {exc}",
                           "fix the module; until then the audit fails")
    return [s for s in getattr(module, "STANDARDS", []) if isinstance(s, Standard)], None


if __name__ == "__main__":
    sys.exit(main())
