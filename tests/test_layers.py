"""The layers of ARCHITECTURE.md, checked on every import of the package (deferred ones
inside functions included), so that layering does not rest on discipline."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "aipass_git"

# Lower layers first; packages of one layer do not import each other.
LAYERS = [
    {"core"},
    {"store"},
    {"agents"},
    {"mail", "memory", "plans", "claims"},
    {"audit", "dispatch"},
    {"prs"},
    {"flow"},
    {"sync", "triggers"},
    {"hooks"},
    {"setup"},
    {"monitor"},
    {"cli"},
]
RANK = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, top-level package under aipass_git) of every import in PATH."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] if node.module != "aipass_git" else [f"aipass_git.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "aipass_git" and len(parts) > 1:
                found.append((node.lineno, parts[1]))
    return found


def test_every_package_has_a_layer():
    packages = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert packages == set(RANK), f"give these a layer: {sorted(packages ^ set(RANK))}"


def test_no_package_imports_its_own_layer_or_a_higher_one():
    broken = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).parts
        if len(parts) < 2:
            continue  # __init__.py / __main__.py of the package itself: the entry points
        own = parts[0]
        for line, target in imports_of(path):
            if target in RANK and target != own and RANK[target] >= RANK[own]:
                broken.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {own} imports {target}")
    assert broken == [], "\n".join(broken)


def test_the_check_sees_deferred_imports(tmp_path: Path):
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from aipass_git.cli import main\n    import aipass_git.prs.queue\n")
    assert imports_of(sample) == [(2, "cli"), (3, "prs")]


def test_every_import_inside_a_function_says_why_it_waits():
    """Imports go at the top of a module; one that waits for its first use (to keep a
    command's start fast, or to load a heavy library only when needed) says so."""
    silent = []
    for path in sorted(PACKAGE.rglob("*.py")):
        lines = path.read_text(encoding="utf-8").split("\n")
        for node in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for sub in ast.walk(node):
                    if isinstance(sub, (ast.Import, ast.ImportFrom)):
                        near = lines[max(0, sub.lineno - 3):sub.lineno]
                        if not any("deferred" in line for line in near):
                            silent.append(f"{path.relative_to(PACKAGE.parent)}:{sub.lineno}: {lines[sub.lineno - 1].strip()}")
    assert silent == [], "say why each waits ('# deferred: ...'):\n" + "\n".join(silent)
