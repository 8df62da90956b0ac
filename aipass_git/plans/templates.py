"""Plan templates: `templates/plans/*.yaml` shipped with aipass-git, and a project's own in
`.aipass/plan-templates/*.yaml` (same name: the project's wins).

A template names its parameters and its phases; `{title}` and every parameter are filled
into phase owners and tasks (`plan new --template T "Title" --set agent=@x`):

    description: one line
    living: false            # a living plan (an audit) is never closed by itself
    params:
      agent: who builds      # name: what it is for (every parameter is required)
    phases:
      - name: build
        owner: "{agent}"
        task: "Build {title}"
        depends_on: []
        done_when: pr-merged   # reply | pr-merged | audit-clean | approve
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aipass_git.core import names, resources
from aipass_git.core.documents import load_yaml
from aipass_git.core.errors import RefusedError
from aipass_git.core.files import checked
from aipass_git.core.repo import Repo
from aipass_git.core.validate import Bool, Int, List, Map, Nullable, Obj, Str, validate
from aipass_git.plans import plan

PROJECT_DIR = ".aipass/plan-templates"
TEMPLATE = Obj(
    required={
        "description": Str(max_len=300, one_line=True),
        "phases": List(Obj(required={"name": plan.PHASE_NAME, "owner": Str(max_len=100, one_line=True),
                                     "task": Str(max_len=4000)},
                           optional={"depends_on": List(plan.PHASE_NAME, max_items=100, unique=True),
                                     "done_when": Str(choices=plan.DONE_RULES),
                                     "timeout_minutes": Nullable(Int(min=1, max=100_000)),
                                     "claims": List(Str(max_len=300, one_line=True), max_items=100, unique=True)}),
                      max_items=500),
    },
    optional={"living": Bool(), "params": Map(Str(max_len=300, one_line=True))},
)
FILLED = re.compile(r"\{([a-z_][a-z0-9_]*)\}")


@dataclass(frozen=True)
class Template:
    name: str
    source: str  # "aipass-git" or the project file
    doc: dict[str, Any]

    @property
    def params(self) -> dict[str, str]:
        return self.doc.get("params") or {}


def _load(path: Path, source: str, shown: str) -> Template:
    doc = load_yaml(path.read_text(encoding="utf-8"), shown, "fix the template; see: git aipass plan templates")
    validate(doc, TEMPLATE, shown, "each phase needs name, owner and task; see the shipped templates")
    return Template(path.stem, source, doc)


def available(repo: Repo | None) -> dict[str, Template]:
    found = {p.stem: _load(p, "aipass-git", f"templates/plans/{p.name}")
             for p in sorted((resources.templates_dir() / "plans").glob("*.yaml"))}
    if repo is not None and (repo.root / PROJECT_DIR).is_dir():
        for p in sorted((repo.root / PROJECT_DIR).glob("*.yaml")):
            rel = f"{PROJECT_DIR}/{p.name}"
            found[p.stem] = _load(checked(repo.root, rel), rel, rel)
    return found


def fill(template: Template, title: str, values: dict[str, str]) -> list[dict[str, Any]]:
    """The template's phases with `{title}` and the parameters filled in. Agent names may
    be given as @name."""
    unknown = sorted(set(values) - set(template.params))
    if unknown:
        raise RefusedError(f"--set {unknown[0]}: template {template.name!r} has no such parameter",
                           f"its parameters: {', '.join(template.params) or 'none'}")
    missing = [p for p in template.params if p not in values]
    if missing:
        raise RefusedError(f"template {template.name!r} needs --set {missing[0]}=... ({template.params[missing[0]]})",
                           "give every parameter: " + " ".join(f"--set {p}=..." for p in template.params))
    fields = {"title": title, **{k: names.strip_at(v) for k, v in values.items()}}

    def put(text: str) -> str:
        # only {name}s the template knows are filled: other braces in a task stay as written
        return FILLED.sub(lambda m: fields.get(m[1], m[0]), text)

    phases = []
    for raw in template.doc["phases"]:
        phase = {**raw, "owner": put(raw["owner"]), "task": put(raw["task"])}
        if "claims" in raw:
            phase["claims"] = [put(g) for g in raw["claims"]]
        phases.append(phase)
    return phases
