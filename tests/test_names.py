import re

import pytest
from hypothesis import given, strategies as st

from aipass_git.core import names
from aipass_git.core.errors import InvalidNameError


@pytest.mark.parametrize("raw, expected", [("quality", "quality"), ("@quality", "quality"), ("api-docs_2", "api-docs_2"), ("a" * 32, "a" * 32)])
def test_valid_names_normalize(raw, expected):
    assert names.normalize(raw) == expected


@pytest.mark.parametrize(
    "raw, reason",
    [
        ("../x", "start with a letter"),
        ("a/b", "'/'"),
        ("refs", "reserved"),
        ("", "empty"),
        ("@", "empty"),
        ("a" * 200, "200 characters"),
        ("a" * 33, "33 characters"),
        ("Quality", "upper case"),
        ("qualité", "'é'"),
        ("1st", "start with a letter"),
        ("-x", "start with a letter"),
        ("a b", "' '"),
        ("a.lock", "'.'"),
        ("all", "reserved"),
        ("human", "reserved"),
        ("orchestrator", "reserved"),
        ("x\n", "'\\n'"),
    ],
)
def test_invalid_names_are_refused_with_the_reason(raw, reason):
    with pytest.raises(InvalidNameError) as info:
        names.normalize(raw)
    assert reason in info.value.message
    assert info.value.exit_code == 2
    assert info.value.hint


@given(st.text(max_size=40))
def test_normalize_accepts_exactly_the_documented_rule(raw):
    rule = re.compile(r"@?([a-z][a-z0-9_-]{0,31})")
    m = rule.fullmatch(raw)
    try:
        name = names.normalize(raw)
    except InvalidNameError:
        assert m is None or m.group(1) in names.RESERVED
    else:
        assert m is not None and name == m.group(1) and name not in names.RESERVED
