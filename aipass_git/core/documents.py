"""Reading stored JSON documents: decode, parse and validate in one step, with errors
that name the file and the line or field."""

from __future__ import annotations

import json
from typing import Any

from aipass_git.core.errors import ValidationError
from aipass_git.core.validate import Spec, validate

FIX_HINT = "fix the file by hand, or restore it with: git checkout -- <file>"


def load_json(data: bytes, file: str, spec: Spec, hint: str = FIX_HINT) -> Any:
    try:
        doc = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ValidationError(file, None, "is not UTF-8 text", hint) from None
    except json.JSONDecodeError as exc:
        raise ValidationError(
            file, None, f"line {exc.lineno}, column {exc.colno}: {exc.msg} (not valid JSON)", hint
        ) from None
    validate(doc, spec, file, hint)
    return doc


def require_equal(doc: dict, key: str, expected: str, file: str, what: str = "its folder") -> None:
    if doc[key] != expected:
        raise ValidationError(file, key, f"{doc[key]!r} does not match {what} {expected!r}", FIX_HINT)
