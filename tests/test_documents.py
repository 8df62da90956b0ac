"""Schemas and config: every violation names the file, the field and the bad value."""

import json

import pytest
from hypothesis import given, strategies as st

from aipass_git.core import canonical, clock, config, ids, schemas
from aipass_git.core.documents import load_json
from aipass_git.core.errors import ValidationError
from aipass_git.core.validate import validate

PASSPORT = {
    "v": 1, "name": "quality", "role": "reviews", "provider": "claude", "model": None, "owns": ["tests/**"],
    "template": "default", "created": "2026-01-01T00:00:00Z", "created_by": "Ann", "status": "active", "retired": None,
}


def test_a_valid_passport_passes():
    validate(PASSPORT, schemas.PASSPORT, "p.json")


@pytest.mark.parametrize(
    "change, field, words",
    [
        ({"name": None}, "name", "is missing"),
        ({"v": 2}, "v", "expected 1, got 2"),
        ({"status": "sleeping"}, "status", "'sleeping' is not one of active, retired"),
        ({"owns": ["ok/**", "../etc/*"]}, "owns[1]", "'../etc/*'"),
        ({"owns": "tests/**"}, "owns", "expected a list"),
        ({"created": "yesterday"}, "created", "'yesterday'"),
        ({"role": "two\nlines"}, "role", "one line"),
        ({"extra": 1}, "extra", "unknown field"),
        ({"model": 7}, "model", "expected a string"),
    ],
)
def test_passport_violations_name_file_field_and_value(change, field, words):
    doc = dict(PASSPORT)
    for key, value in change.items():
        if value is None and key == "name":
            del doc[key]
        else:
            doc[key] = value
    with pytest.raises(ValidationError) as info:
        validate(doc, schemas.PASSPORT, ".aipass/agents/quality/passport.json")
    message = info.value.message
    assert message.startswith(f".aipass/agents/quality/passport.json: field '{field}': ")
    assert words in message


def test_malformed_json_names_the_line():
    with pytest.raises(ValidationError) as info:
        load_json(b'{\n  "v": 1,\n  oops\n}', "m.json", schemas.MEMORY)
    assert "m.json: line 3" in info.value.message


def test_config_template_renders_valid_and_documents_every_key():
    text = config.render_default("devpulse", "main")
    cfg = config.parse(text)
    assert cfg.orchestrator == "devpulse" and cfg.base_branch == "main"
    assert set(cfg.providers) >= {"claude", "codex", "gemini", "command"}
    assert cfg.limits["body_max_bytes"] == 262144 and cfg.timeouts["startup_seconds"] == 90
    lines = text.splitlines()
    # every scalar setting has a comment on the line above it
    leaves = [(k, 0) for k, v in cfg.raw.items() if not isinstance(v, dict)]
    leaves += [(k, 2) for section in ("limits", "timeouts", "desks") for k in cfg.raw[section]]
    leaves.append(("providers", 0))
    for key, indent in leaves:
        i = next(i for i, l in enumerate(lines) if l.startswith(" " * indent + key + ":"))
        assert lines[i - 1].strip().startswith("#"), f"{key} has no comment"


def test_yaml_error_shows_the_line():
    text = config.render_default("devpulse", "main").replace("base_branch: main", "base_branch: [main")
    with pytest.raises(ValidationError) as info:
        config.parse(text)
    line = next(i for i, l in enumerate(text.splitlines(), 1) if l.startswith("base_branch"))
    assert ".aipass/config.yaml: line" in info.value.message
    # the error points at the line where the broken list starts
    assert f"line {line}" in info.value.message


@pytest.mark.parametrize(
    "old, new, field",
    [
        ("startup_seconds: 90", "startup_seconds: soon", "timeouts.startup_seconds"),
        ("default_provider: claude", "default_provider: nobody", "default_provider"),
        ("orchestrator: devpulse", "orchestrator: Dev", "orchestrator"),
        ("retries: 2", "retries: -1", "timeouts.retries"),
    ],
)
def test_config_violations_name_the_field(old, new, field):
    text = config.render_default("devpulse", "main").replace(old, new)
    with pytest.raises(ValidationError) as info:
        config.parse(text)
    assert f"field '{field}'" in info.value.message


def test_canonical_json_is_sorted_indented_and_ends_with_newline():
    text = canonical.dumps({"b": 1, "a": {"d": "é", "c": [1]}})
    assert text == '{\n  "a": {\n    "c": [\n      1\n    ],\n    "d": "é"\n  },\n  "b": 1\n}\n'


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(), lambda c: st.lists(c) | st.dictionaries(st.text(), c), max_leaves=20))
def test_canonical_json_round_trips_and_is_stable(doc):
    text = canonical.dumps(doc)
    assert text == json.dumps(doc, ensure_ascii=False, indent=2, sort_keys=True) + "\n"
    assert json.loads(text) == doc
    assert canonical.dumps(json.loads(text)) == text


def test_ids_sort_by_time_and_are_unique():
    a = ids.new_id(now_ms=1_000)
    b = ids.new_id(now_ms=2_000)
    assert a < b and ids.is_id(a) and ids.timestamp_ms(b) == 2_000
    assert len({ids.new_id() for _ in range(1000)}) == 1000


def test_timestamps_parse_back():
    assert clock.parse(clock.utc_now()).tzinfo is not None
