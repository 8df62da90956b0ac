"""Reading stored JSON documents: decode, parse and validate in one step, with errors
that name the file and the line or field."""

from __future__ import annotations

import json
import re
from typing import Any, Iterator

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


def json_lines(data: bytes, file: str, hint: str, first: int = 1) -> Iterator[tuple[int, Any]]:
    """(line number, value) of each non-blank line of JSON-lines DATA (whose first line is
    line FIRST of FILE); a line that is not JSON is a ValidationError naming FILE and the line."""
    for number, line in enumerate(data.decode("utf-8", "replace").splitlines(), first):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValidationError(file, None, f"line {number}: not JSON ({exc.msg})", hint) from None


def require_equal(doc: dict, key: str, expected: str, file: str, what: str = "its folder") -> None:
    if doc[key] != expected:
        raise ValidationError(file, key, f"{doc[key]!r} does not match {what} {expected!r}", FIX_HINT)


def load_yaml(text: str, file: str, hint: str = FIX_HINT) -> Any:
    """The YAML TEXT of FILE as data; refuses what PyYAML would silently accept, a key given
    twice in one mapping (the last would win), naming the key and both lines."""
    import yaml  # deferred: ~20 ms; help, the hooks' quick exits and the drivers read no YAML

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class Loader(base):  # type: ignore[misc, valid-type]
        # YAML 1.2's booleans, true and false only: under 1.1's, `on:` (a trigger's event) is
        # the key True, and `no` (Norway's country code) is False
        yaml_implicit_resolvers = {first: [r for r in found if r[0] != "tag:yaml.org,2002:bool"]
                                   for first, found in base.yaml_implicit_resolvers.items()}

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

    Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                 list("tTfF"))
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


def yaml_lines(text: str) -> dict[str, int]:
    """Field path, as the validator names it (`rules[0].do[1].task`), -> the line it is on:
    so an error in a YAML document people write says where to look."""
    import yaml  # deferred: see load_yaml

    lines: dict[str, int] = {}

    def walk(node, path: str) -> None:
        lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                inner = f"{path}.{key.value}" if path else str(key.value)
                lines[inner] = key.start_mark.line + 1
                walk(value, inner)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, f"{path}[{i}]")

    root = yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    if root is not None:
        walk(root, "")
    return lines


def load_yaml_checked(text: str, file: str, spec: Spec, hint: str = FIX_HINT) -> Any:
    """`load_yaml`, then validated against SPEC; a violation names the line of the field."""
    doc = load_yaml(text, file, hint)
    try:
        validate(doc, spec, file, hint)
    except ValidationError as exc:
        raise located(exc, text) from None
    return doc


def located(exc: ValidationError, text: str) -> ValidationError:
    """EXC (about a field of the YAML TEXT) with the line of that field, or of the nearest
    field around it that the text holds."""
    lines = yaml_lines(text)
    field = exc.field or ""
    while field and field not in lines:
        field = field.rsplit(".", 1)[0] if "." in field else field.rsplit("[", 1)[0] if "[" in field else ""
    line = lines.get(field)
    return ValidationError(exc.file, exc.field, (f"line {line}: " if line else "") + exc.problem, exc.hint)
