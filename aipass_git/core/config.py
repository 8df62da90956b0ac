"""`.aipass/config.yaml`: reading, validating and rendering the project settings."""

from __future__ import annotations

import hashlib
import json
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aipass_git.core import resources, schemas
from aipass_git.core.canonical import encode, write_derived
from aipass_git.core.documents import load_yaml
from aipass_git.core.files import checked
from aipass_git.core.errors import ValidationError
from aipass_git.core.repo import CONFIG_FILE, Repo
from aipass_git.core.validate import validate

DEFAULT_ORCHESTRATOR = "devpulse"
FIX_HINT = f"fix {CONFIG_FILE} (each key is explained in its comments), or see: git aipass doctor"


@dataclass(frozen=True)
class Config:
    raw: dict[str, Any]

    @property
    def orchestrator(self) -> str:
        return self.raw["orchestrator"]

    @property
    def base_branch(self) -> str:
        return self.raw["base_branch"]

    @property
    def default_provider(self) -> str:
        return self.raw["default_provider"]

    @property
    def providers(self) -> dict[str, dict[str, Any]]:
        return self.raw["providers"]

    @property
    def limits(self) -> dict[str, int]:
        return self.raw["limits"]

    @property
    def timeouts(self) -> dict[str, float]:
        return self.raw["timeouts"]

    @property
    def trust(self) -> str:
        return self.raw.get("trust", "any")


def parse(text: str, file: str = CONFIG_FILE) -> Config:
    """Validate the YAML TEXT of a config file; errors name FILE, the line or field."""
    raw = load_yaml(text, file, FIX_HINT)
    validate(raw, schemas.CONFIG, file, FIX_HINT)
    for key, value in schemas.TIMEOUT_DEFAULTS.items():
        raw["timeouts"].setdefault(key, value)
    if raw["default_provider"] not in raw["providers"]:
        raise ValidationError(
            file,
            "default_provider",
            f"{raw['default_provider']!r} is not one of the providers ({', '.join(raw['providers'])})",
            FIX_HINT,
        )
    return Config(raw)


def load(repo: Repo) -> Config:
    repo.require_initialised()
    return read(checked(repo.root, CONFIG_FILE), CONFIG_FILE, cache=repo.runtime_dir / "index" / "config.json")


_PARSED: dict[tuple[str, str], Config] = {}


def read(path: Path, file: str, *, cache: Path | None = None) -> Config:
    """The config in PATH, validated. A long-lived process (a supervisor) reads the file
    again for every step, and every command reads it once: parsing YAML is what costs
    (and importing PyYAML, ~20 ms), so the same text is parsed once per process, and with
    CACHE once per repository, its validated result kept as JSON beside the sha-1 of the text."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValidationError(file, None, "is not UTF-8 text", FIX_HINT) from None
    key = (file, text)
    if key not in _PARSED:
        _PARSED.clear()  # one config per process in practice; never a growing cache
        _PARSED[key] = _cached(text, file, cache) if cache is not None else parse(text, file)
    return _PARSED[key]


def _cached(text: str, file: str, cache: Path) -> Config:
    digest = hashlib.sha1(text.encode("utf-8")).hexdigest()
    try:
        kept = json.loads(cache.read_text(encoding="utf-8"))
        if kept.get("sha1") == digest:
            return Config(kept["raw"])
    except (OSError, ValueError, AttributeError):
        pass  # none yet, or unreadable: derived, so parsed again
    config = parse(text, file)
    write_derived(cache, encode({"raw": config.raw, "sha1": digest}))
    return config


def render_default(orchestrator: str, base_branch: str) -> str:
    """The commented default config for a new project."""
    template = resources.template_path("config.yaml").read_text(encoding="utf-8")
    text = string.Template(template).substitute(orchestrator=orchestrator, base_branch=base_branch)
    parse(text)  # a template that does not validate is a bug in aipass-git, not the user's
    return text
