"""Files shipped with aipass-git: agent and config templates, git hook shims.

In the repository they sit at the top level (templates/, hooks/) so they are reviewed as
files of their own; the wheel carries them inside the package (see pyproject.toml).
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent.parent


def _first_existing(*candidates: Path) -> Path:
    for path in candidates:
        if path.is_dir():
            return path
    return candidates[0]


def templates_dir() -> Path:
    return _first_existing(_PACKAGE / "templates", _PACKAGE.parent / "templates")


def hook_shims_dir() -> Path:
    return _first_existing(_PACKAGE / "hook_shims", _PACKAGE.parent / "hooks")


def template_path(name: str) -> Path:
    return templates_dir() / name
