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


def load_yaml(text: str, file: str, hint: str = FIX_HINT) -> Any:
    """The YAML TEXT of FILE as data; refuses what PyYAML would silently accept, a key given
    twice in one mapping (the last would win), naming the key and both lines."""
    import yaml  # deferred: ~20 ms; help, the hooks' quick exits and the drivers read no YAML

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class Loader(base):  # type: ignore[misc, valid-type]
        def construct_mapping(self, node, deep=False):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                if key in seen:
                    raise ValidationError(file, str(key), f"given twice, on lines {seen[key]} and {line} "
                                          "(YAML would keep the last one silently)", hint)
                seen[key] = line
            return super().construct_mapping(node, deep=deep)

    try:
        return yaml.load(text, Loader=Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = exc.problem or exc.context or "not valid YAML"
        if exc.context and exc.context_mark and exc.context_mark is not mark:
            problem += f", {exc.context} at line {exc.context_mark.line + 1}"
        raise ValidationError(file, None, f"{where}{problem} (not valid YAML)", hint) from None
    except yaml.YAMLError as exc:
        raise ValidationError(file, None, f"not valid YAML: {exc}", hint) from None
