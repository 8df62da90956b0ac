"""Reading stored JSON documents: decode, parse and validate in one step, with errors
that name the file and the line or field."""

from __future__ import annotations

import json
from typing import Any

from aipass_git.core.errors import ValidationError
from aipass_git.core.validate import Spec, validate

FIX_HINT = "fix the file by hand, or restore it with: git checkout -- <file>"


class _Twice(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    doc = dict(pairs)
    if len(doc) != len(pairs):
        seen: set[str] = set()
        raise _Twice(next(k for k, _ in pairs if k in seen or seen.add(k)))
    return doc


def load_json(data: bytes, file: str, spec: Spec, hint: str = FIX_HINT) -> Any:
    """The JSON DATA of FILE, validated against SPEC. A key given twice in one object is
    refused (json keeps the last silently: a second "owns" would change ownership)."""
    try:
        doc = json.loads(data.decode("utf-8"), object_pairs_hook=_unique)
    except _Twice as exc:
        raise ValidationError(file, exc.key, "given twice in one object (JSON would keep the last one silently)",
                              hint) from None
    except UnicodeDecodeError:
        raise ValidationError(file, None, "is not UTF-8 text", hint) from None
    except json.JSONDecodeError as exc:
        raise ValidationError(
            file, None, f"line {exc.lineno}, column {exc.colno}: {exc.msg} (not valid JSON)", hint
        ) from None
    except RecursionError:
        raise ValidationError(file, None, "is nested too deeply to be one of our documents", hint) from None
    try:
        validate(doc, spec, file, hint)
    except RecursionError:
        raise ValidationError(file, None, "is nested too deeply to be one of our documents", hint) from None
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
        if "*" in text:
            _refuse_aliases(yaml, text, base, file, hint)
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


def _refuse_aliases(yaml, text: str, loader, file: str, hint: str) -> None:
    """Our documents never need `*alias`: refused, because a few nested aliases expand to
    millions of nodes for anything that walks the data (the validator does)."""
    for token in yaml.scan(text, Loader=loader):
        if isinstance(token, yaml.AliasToken):
            raise ValidationError(file, None, f"line {token.start_mark.line + 1}: YAML aliases (*{token.value}) "
                                  "are not supported; write the value out", hint)
