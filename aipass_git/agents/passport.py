"""Passports: an agent's identity document, `.aipass/agents/<name>/passport.json`."""

from __future__ import annotations

from typing import Any

from aipass_git.core import schemas
from aipass_git.core.documents import load_json, require_equal


def parse(data: bytes, file: str, *, expected_name: str | None = None) -> dict[str, Any]:
    """A validated passport from the bytes of FILE."""
    doc = load_json(data, file, schemas.PASSPORT)
    if expected_name is not None:
        require_equal(doc, "name", expected_name, file)
    return doc


def build(
    *,
    name: str,
    role: str,
    provider: str,
    model: str | None,
    owns: list[str],
    template: str,
    created: str,
    created_by: str,
) -> dict[str, Any]:
    return {
        "v": schemas.FORMAT_VERSION,
        "name": name,
        "role": role,
        "provider": provider,
        "model": model,
        "owns": owns,
        "template": template,
        "created": created,
        "created_by": created_by,
        "status": "active",
        "retired": None,
    }
