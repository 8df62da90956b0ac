"""A small declarative validator for the documents aipass stores.

Written here rather than taken from a library because each violation must name the file,
the field path and the bad value in one line (`passport.json: field 'owns[2]': ...`),
which jsonschema, msgspec and cfgv do not say as plainly, and because of their import
cost at every command start (measured here: jsonschema ~150 ms, msgspec ~40 ms cold).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable

from aipass_git.core.errors import RefusedError, ValidationError
from aipass_git.core.text import describe, first_unsafe


class Violation(Exception):
    def __init__(self, path: str, problem: str) -> None:
        super().__init__(problem)
        self.path = path
        self.problem = problem


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "true/false", type(None): "null"}.get(
        type(value), "a number" if isinstance(value, (int, float)) else type(value).__name__
    )


class Spec:
    def check(self, value: Any, path: str) -> None:  # pragma: no cover - interface
        raise NotImplementedError


@dataclass
class Str(Spec):
    pattern: str | None = None
    min_len: int = 1
    max_len: int | None = None
    choices: tuple[str, ...] | None = None
    one_line: bool = False
    test: Callable[[str], bool] | None = None
    expected: str = ""  # words for the error when `pattern` or `test` fails

    def check(self, value: Any, path: str) -> None:
        if not isinstance(value, str):
            raise Violation(path, f"expected a string, got {_type_name(value)} {_show(value)}")
        if self.choices is not None and value not in self.choices:
            raise Violation(path, f"{_show(value)} is not one of {', '.join(self.choices)}")
        if len(value) < self.min_len:
            raise Violation(path, "must not be empty" if self.min_len == 1 else f"shorter than {self.min_len}")
        if self.max_len is not None and len(value) > self.max_len:
            raise Violation(path, f"{len(value)} characters, at most {self.max_len} allowed")
        if self.one_line and ("\n" in value or "\r" in value):
            raise Violation(path, f"must be one line, got {_show(value)}")
        if self.one_line and (bad := first_unsafe(value)) is not None:
            raise Violation(path, f"holds {describe(bad)}, which would change how it shows")
        if self.pattern is not None and not re.fullmatch(self.pattern, value):
            raise Violation(path, f"{_show(value)} is not {self.expected or 'well formed'}")
        if self.test is not None and not self.test(value):
            raise Violation(path, f"{_show(value)} is not {self.expected or 'valid'}")


@dataclass
class Int(Spec):
    min: int | None = None
    max: int | None = None

    def check(self, value: Any, path: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise Violation(path, f"expected a whole number, got {_type_name(value)} {_show(value)}")
        if self.min is not None and value < self.min:
            raise Violation(path, f"{value} is below the minimum {self.min}")
        if self.max is not None and value > self.max:
            raise Violation(path, f"{value} is above the maximum {self.max}")


@dataclass
class Bool(Spec):
    def check(self, value: Any, path: str) -> None:
        if not isinstance(value, bool):
            raise Violation(path, f"expected true or false, got {_type_name(value)} {_show(value)}")


@dataclass
class Num(Spec):
    min: float | None = None
    positive: bool = False

    def check(self, value: Any, path: str) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            raise Violation(path, f"expected a number, got {_type_name(value)} {_show(value)}")
        if self.positive and value <= 0:
            raise Violation(path, f"{value} is not a positive number")
        if self.min is not None and value < self.min:
            raise Violation(path, f"{value} is below the minimum {self.min}")


@dataclass
class Const(Spec):
    value: Any

    def check(self, value: Any, path: str) -> None:
        if value != self.value or type(value) is not type(self.value):
            raise Violation(path, f"expected {self.value!r}, got {_show(value)}")


@dataclass
class Nullable(Spec):
    inner: Spec

    def check(self, value: Any, path: str) -> None:
        if value is not None:
            self.inner.check(value, path)


@dataclass
class List(Spec):
    item: Spec
    max_items: int | None = None
    unique: bool = False

    def check(self, value: Any, path: str) -> None:
        if not isinstance(value, list):
            raise Violation(path, f"expected a list, got {_type_name(value)} {_show(value)}")
        if self.max_items is not None and len(value) > self.max_items:
            raise Violation(path, f"{len(value)} items, at most {self.max_items} allowed")
        for i, item in enumerate(value):
            self.item.check(item, f"{path}[{i}]")
        if self.unique and len(set(map(repr, value))) != len(value):
            raise Violation(path, "items must not repeat")


@dataclass
class Obj(Spec):
    required: dict[str, Spec] = field(default_factory=dict)
    optional: dict[str, Spec] = field(default_factory=dict)
    allow_extra: bool = False

    def check(self, value: Any, path: str) -> None:
        if not isinstance(value, dict):
            raise Violation(path or "(top level)", f"expected an object, got {_type_name(value)} {_show(value)}")
        prefix = f"{path}." if path else ""
        for key, spec in self.required.items():
            if key not in value:
                raise Violation(f"{prefix}{key}", "is missing")
            spec.check(value[key], f"{prefix}{key}")
        for key, spec in self.optional.items():
            if key in value:
                spec.check(value[key], f"{prefix}{key}")
        if not self.allow_extra:
            known = self.required.keys() | self.optional.keys()
            for key in value:
                if key not in known:
                    raise Violation(f"{prefix}{key}", f"unknown field (known: {', '.join(sorted(known))})")


@dataclass
class Map(Spec):
    """An object whose keys are names chosen by the user (e.g. providers)."""
    value: Spec
    key_pattern: str = r"[a-z][a-z0-9_-]*"

    def check(self, value: Any, path: str) -> None:
        if not isinstance(value, dict):
            raise Violation(path, f"expected an object, got {_type_name(value)} {_show(value)}")
        for key, item in value.items():
            if not isinstance(key, str) or not re.fullmatch(self.key_pattern, key):
                raise Violation(f"{path}.{key}", f"{_show(key)} is not a valid key")
            self.value.check(item, f"{path}.{key}")


def validate(doc: Any, spec: Spec, file: str, hint: str | None = None) -> None:
    """Raise ValidationError naming FILE, the field and the problem when DOC breaks SPEC."""
    try:
        spec.check(doc, "")
    except Violation as v:
        raise ValidationError(file, v.path or None, v.problem, hint) from None


def check_input(value: Any, spec: Spec, what: str, hint: str | None = None) -> None:
    """Refuse a value given on the command line, naming the option it came from."""
    try:
        spec.check(value, what)
    except Violation as v:
        raise RefusedError(f"{v.path}: {v.problem}", hint) from None
