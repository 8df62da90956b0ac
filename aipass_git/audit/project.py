"""The project's own standards (`.aipass/standards/*.py`): found, described and run
without letting them touch the audit.

They are code from the repository, so three rules keep a careless or hostile one in its
place (README, "Project standards"):

- only files git tracks run, in the version git tracks (the index; the merged tree when a
  merge is audited): an untracked or ignored file never runs;
- `--list` and `--only` read each standard's id, description, scope and severity from the
  module's syntax tree, without running anything;
- they run in a child process (audit/project_worker.py) with a time limit
  (`timeouts.standards_seconds`), so one cannot hang the audit or change the built-in
  standards (clearing the secret patterns changes only the child's copy), and what it
  reports is checked before it becomes a finding.
"""

from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass

from aipass_git.audit.engine import SEVERITIES, Context, Finding, Standard
from aipass_git.audit.standards import BUILTIN
from aipass_git.core import git
from aipass_git.core.program import module_argv
from aipass_git.core.repo import AIPASS_DIR
from aipass_git.store.objects import ObjectReader

FOLDER = f"{AIPASS_DIR}/standards"
SCOPES = ("repository", "agent", "file")
# ids a project standard may not take: the built-ins', and the audit's own findings
RESERVED = {s.id for s in BUILTIN}
RESERVED_PREFIX = "audit."


@dataclass(frozen=True)
class Module:
    path: str  # relative to the root, e.g. .aipass/standards/local.py
    source: bytes
    standards: list[Standard]  # as declared in the source (checks are not loaded here)
    problems: list[Finding]  # what keeps it (or some of its standards) from running


def _never(ctx):  # the check of a declared standard: it only runs in the worker
    raise RuntimeError("a project standard runs only in the audit's worker process")


def modules(ctx: Context) -> tuple[list[Module], list[Finding]]:
    """The tracked modules at the revision CTX audits, each with what it declares; and a
    finding for each module that exists in the work tree but is not tracked (it does not
    run, which should not pass unnoticed)."""
    root = ctx.repo.root
    if ctx.tree is not None:
        names = git.tree_files(root, ctx.tree, FOLDER)
        prefix = f"{ctx.tree}:"
    else:
        names = git.tracked_files(root, [FOLDER])
        prefix = ":"
    names = [n for n in names if _is_module(n)]
    found: list[Module] = []
    if names:
        reader = ObjectReader(root)
        try:
            blobs = reader.read_many([prefix + n for n in names], missing_ok=True)
        finally:
            reader.close()
        for name, blob in zip(names, blobs):
            if blob is not None and blob[0] == "blob":
                found.append(declare(name, blob[1]))
    untracked: list[Finding] = []
    if ctx.tree is None:
        tracked = set(names)
        for name in git.untracked_files(root):
            if _is_module(name) and name not in tracked:
                untracked.append(Finding(name, 0, "audit.project-untracked", "warning",
                                         "is not tracked by git, so it does not run",
                                         f"to run it: git add {name}"))
    return found, untracked


def _is_module(path: str) -> bool:
    folder, _, name = path.rpartition("/")
    return folder == FOLDER and name.endswith(".py") and "\n" not in name


def declare(path: str, source: bytes) -> Module:
    """What the module at PATH declares, read from its syntax tree: every function under
    `@standard("id", "description", scope=..., severity=...)` with literal arguments that
    STANDARDS lists (or every one, when STANDARDS is not a plain list of names)."""
    try:
        tree = ast.parse(source, filename=path)
    except (SyntaxError, ValueError) as exc:
        line = getattr(exc, "lineno", 0) or 0
        return Module(path, source, [], [_problem(path, f"does not parse: {exc.msg if isinstance(exc, SyntaxError) else exc}",
                                                  "fix the module; until then the audit fails", line)])
    listed = _listed(tree)
    standards, problems = [], []
    for node in tree.body:
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or (listed is not None and node.name not in listed):
            continue
        for deco in node.decorator_list:
            if not (isinstance(deco, ast.Call) and _called(deco.func) == "standard"):
                continue
            try:
                std = _standard_from(deco)
            except ValueError as exc:
                problems.append(_problem(path, f"standard {node.name}: {exc}",
                                         "give @standard literal arguments: an id, a description, scope= and severity=",
                                         deco.lineno))
                continue
            reason = _reserved(std.id)
            if reason:
                problems.append(_problem(path, f"standard {std.id}: {reason}", "give it an id of the project's own, e.g. local.name",
                                         deco.lineno))
                continue
            standards.append(std)
    if not standards and not problems:
        problems.append(_problem(path, "declares no standard the audit can read without running it, so nothing in it runs",
                                 "declare each with @standard('local.id', 'description') and literal arguments, "
                                 "and list them in STANDARDS"))
    return Module(path, source, standards, problems)


def _listed(tree: ast.Module) -> set[str] | None:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "STANDARDS" for t in node.targets):
            if isinstance(node.value, (ast.List, ast.Tuple)) and all(isinstance(e, ast.Name) for e in node.value.elts):
                return {e.id for e in node.value.elts}
    return None


def _called(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _standard_from(call: ast.Call) -> Standard:
    try:
        args = [ast.literal_eval(a) for a in call.args]
        kwargs = {k.arg: ast.literal_eval(k.value) for k in call.keywords if k.arg}
    except ValueError:
        raise ValueError("its @standard(...) arguments are not literals") from None
    if len(args) < 2 or not all(isinstance(a, str) for a in args[:2]):
        raise ValueError("@standard needs an id and a description (strings)")
    scope, severity = kwargs.get("scope", "repository"), kwargs.get("severity", "error")
    if scope not in SCOPES:
        raise ValueError(f"scope {scope!r} is not one of {', '.join(SCOPES)}")
    if severity not in SEVERITIES:
        raise ValueError(f"severity {severity!r} is not one of {', '.join(SEVERITIES)}")
    return Standard(args[0], args[1], scope, severity, _never)


def _reserved(standard_id: str) -> str | None:
    if standard_id in RESERVED:
        return "is the id of a built-in standard, which a project standard may not replace"
    if standard_id.startswith(RESERVED_PREFIX):
        return f"ids starting with {RESERVED_PREFIX} are the audit's own"
    return None


def _problem(path: str, message: str, hint: str, line: int = 0) -> Finding:
    return Finding(path, line, "audit.project-standard", "error", message, hint)


class Worker:
    """The CHOSEN standards (ids) of MODS running in a child process while the audit runs
    the built-in ones; `findings()` waits for them, up to TIMEOUT seconds from the start."""

    def __init__(self, ctx: Context, mods: list[Module], chosen: set[str], timeout: float) -> None:
        self.mods = [m for m in mods if any(s.id in chosen for s in m.standards)]
        self.chosen = chosen
        # findings need one path: the module, or the folder when several ran together
        self.where = self.mods[0].path if len(self.mods) == 1 else FOLDER
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self.proc: subprocess.Popen | None = None
        if not self.mods:
            return
        request = {
            "root": str(ctx.repo.root),
            "paths": ctx.only_paths,
            "agent": ctx.agent,
            "staged": ctx.staged,
            "base": ctx.base,
            "tree": ctx.tree,
            "modules": [{"path": m.path, "source": m.source.decode("utf-8", "surrogateescape"),
                         "standards": sorted(s.id for s in m.standards if s.id in chosen)} for m in self.mods],
        }
        self.proc = subprocess.Popen(
            module_argv("aipass_git.audit.project_worker"),
            cwd=ctx.repo.root, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True,  # the time limit ends everything the standards started too
        )
        self.request = json.dumps(request).encode("utf-8", "surrogateescape")

    def findings(self) -> list[Finding]:
        """Their findings, or one saying why they could not run (a timeout, a crash, a bad report)."""
        if self.proc is None:
            return []
        try:
            out, err = self.proc.communicate(self.request, timeout=max(0.0, self.deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _kill_group(self.proc.pid)
            self.proc.communicate()
            return [_problem(self.where, f"the project standards ({', '.join(m.path.rpartition('/')[2] for m in self.mods)}) "
                             f"did not finish within {self.timeout:g} second{'' if self.timeout == 1 else 's'} and were stopped",
                             "make them faster, or raise timeouts.standards_seconds in .aipass/config.yaml")]
        finally:
            _kill_group(self.proc.pid)  # whatever they left running in the background
        if self.proc.returncode != 0:
            tail = err.decode("utf-8", "replace").strip().splitlines()[-1:] or ["(no message)"]
            return [_problem(self.where, f"the project standards' worker failed (exit {self.proc.returncode}): {tail[0]}",
                             "fix the module (a standard may not exit the process); until then the audit fails")]
        return _accept(out, self.mods, self.chosen, self.where)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass  # the group is already gone


def _accept(out: bytes, mods: list[Module], chosen: set[str], where: str) -> list[Finding]:
    """The worker's report, checked: each finding must be one of a chosen standard's (or a
    crash), with fields of the right types; anything else is itself a finding."""
    declared = {s.id for m in mods for s in m.standards if s.id in chosen} | {"audit.crashed", "audit.project-standard"}
    try:
        raw = json.loads(out)
        findings = [Finding(str(f["path"]), int(f["line"]), str(f["standard"]), str(f["severity"]),
                            str(f["message"]), str(f.get("hint", ""))) for f in raw["findings"]]
    except (ValueError, KeyError, TypeError) as exc:
        return [_problem(where, f"the project standards' worker reported nonsense ({type(exc).__name__})",
                         "report it: the worker's output should be JSON findings")]
    kept = []
    for f in findings:
        if f.standard not in declared or f.severity not in SEVERITIES:
            kept.append(_problem(where, f"a finding for {f.standard!r} with severity {f.severity!r}, which no chosen "
                                        "project standard declares, was dropped", "report under the standard's own id"))
        else:
            kept.append(f)
    return kept
