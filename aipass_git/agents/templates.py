"""Agent templates: `templates/agents/<name>/{template.yaml, README.md}`."""

from __future__ import annotations

import string
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from aipass_git.core import resources
from aipass_git.core.documents import load_yaml
from aipass_git.core.errors import RefusedError, ValidationError
from aipass_git.core.schemas import OWNED_GLOB
from aipass_git.core.validate import List, Obj, Str, validate

_TEMPLATE = Obj(
    required={
        "description": Str(max_len=200, one_line=True),
        "role": Str(max_len=300, one_line=True),
        "owns": List(OWNED_GLOB),
    }
)


@dataclass(frozen=True)
class AgentTemplate:
    name: str
    description: str
    role: str
    owns: tuple[str, ...]
    readme: str  # string.Template text: $name, $role, $owns, $orchestrator

    def render_readme(self, *, name: str, role: str, owns: list[str], orchestrator: str) -> str:
        owned = "\n".join(f"- `{g}`" for g in owns) or "- (nothing yet: add globs with --owns)"
        return string.Template(self.readme).safe_substitute(name=name, role=role, owns=owned, orchestrator=orchestrator)


def available() -> list[str]:
    root = resources.templates_dir() / "agents"
    return sorted(p.name for p in root.iterdir() if (p / "template.yaml").is_file()) if root.is_dir() else []


@cache  # shipped files: the same for the whole process (a batch of agents loads it once)
def load(name: str) -> AgentTemplate:
    folder = resources.templates_dir() / "agents" / name
    names = available()
    if name not in names:
        raise RefusedError(f"unknown template {name!r}", f"choose one of: {', '.join(names)}")
    file = f"templates/agents/{name}/template.yaml"
    meta = load_yaml((folder / "template.yaml").read_text(encoding="utf-8"), file)
    validate(meta, _TEMPLATE, file)
    readme_path: Path = folder / "README.md"
    if not readme_path.is_file():
        raise ValidationError(f"templates/agents/{name}/README.md", None, "is missing")
    return AgentTemplate(
        name=name,
        description=meta["description"],
        role=meta["role"],
        owns=tuple(meta["owns"]),
        readme=readme_path.read_text(encoding="utf-8"),
    )
