"""Code basics for the Python that agents own."""

from __future__ import annotations

import ast
import re
from pathlib import PurePosixPath

from aipass_git.audit.engine import Problem, standard

DEBUG_CALL = re.compile(r"^\s*(breakpoint\(\)|import pdb|pdb\.set_trace\(\)|print\()")


def _owned_python(ctx) -> list[str]:
    files = set(ctx.files)
    out = set()
    for agent in ctx.agents:
        if agent.active:
            out.update(f for f in ctx.owned_by(agent) if f.endswith(".py") and f in files)
    return sorted(out)


def _is_test(rel: str) -> bool:
    name = PurePosixPath(rel).name
    return name.startswith("test_") or name.endswith("_test.py") or "/tests/" in f"/{rel}" or name == "conftest.py"


@standard("python.compiles", "agent-owned Python compiles", scope="file")
def compiles(ctx):
    for rel in _owned_python(ctx):
        text = ctx.text(rel)
        if text is None:
            continue
        try:
            compile(text, rel, "exec", dont_inherit=True)
        except SyntaxError as exc:
            yield Problem(rel, f"does not compile: {exc.msg}", "fix the syntax error", line=exc.lineno or 0)


@standard("python.no-silent-except", "no bare `except: pass` in agent-owned Python", scope="file")
def no_silent_except(ctx):
    for rel in _owned_python(ctx):
        text = ctx.text(rel)
        try:
            tree = ast.parse(text or "", rel)
        except SyntaxError:
            continue  # python.compiles reports it
        for node in ast.walk(tree):
            if isinstance(node, ast.ExceptHandler) and node.type is None and all(isinstance(b, ast.Pass) for b in node.body):
                yield Problem(rel, "bare `except: pass` hides every error", "catch the exception you expect, and say why", line=node.lineno)


@standard("python.no-debug-leftovers", "no debug prints or breakpoints in agent-owned modules", scope="file", severity="warning")
def no_debug(ctx):
    for rel in _owned_python(ctx):
        if _is_test(rel):
            continue
        for number, line in enumerate((ctx.text(rel) or "").splitlines(), 1):
            if DEBUG_CALL.match(line):
                yield Problem(rel, f"debug leftover: {line.strip()[:40]}", "remove it, or log through the module's logger", line=number)


@standard("python.tests-exist", "each agent-owned module has a test file", scope="file", severity="warning")
def tests_exist(ctx):
    tests = {PurePosixPath(f).name for f in ctx.tracked if _is_test(f)}
    for rel in _owned_python(ctx):
        name = PurePosixPath(rel).name
        if _is_test(rel) or name in ("__init__.py", "__main__.py", "setup.py"):
            continue
        stem = name[:-3]
        if f"test_{stem}.py" not in tests and f"{stem}_test.py" not in tests:
            yield Problem(rel, f"no test_{stem}.py anywhere in the repository", "add tests for it before opening the PR")


STANDARDS = [compiles, no_silent_except, no_debug, tests_exist]
