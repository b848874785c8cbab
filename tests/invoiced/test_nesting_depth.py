"""The page's nesting depth read off its bytes agrees with the decoded objects, exactly."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.invoiced.contract import MAX_DEPTH, ContractError, check_page
from syncd.invoiced.decode import loads, nesting_depth

NOW = 1_700_000_000

# Strings full of what could fool a byte scanner: quotes, brackets, backslashes, escapes.
_TRICKY = st.text(alphabet=st.sampled_from(list('"\\[]{}/ab\n\u00e9\u2028\U0001f600')), max_size=8)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | _TRICKY,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TRICKY, inner, max_size=4),
    max_leaves=40,
)


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


@settings(max_examples=400, deadline=None)
@given(value=_JSON, ascii_only=st.booleans(), indent=st.sampled_from([None, 1]))
def test_depth_from_bytes_equals_the_depth_of_the_objects(value: Any, ascii_only: bool, indent: int | None) -> None:
    body = json.dumps(value, ensure_ascii=ascii_only, indent=indent).encode()
    assert loads(body) == value or value != value  # the parser accepts what we measure
    expected = _depth(value)
    assert nesting_depth(body, 64) == expected
    if expected:
        assert nesting_depth(body, expected - 1) is None  # over the limit: not measured


def test_bodies_not_read_as_utf8_are_not_measured() -> None:
    assert nesting_depth("[[1]]".encode("utf-16"), 10) is None
    assert nesting_depth("[[1]]".encode("utf-16-le"), 10) is None
    assert nesting_depth(b"\xef\xbb\xbf[[1]]", 10) is None
    assert nesting_depth(b"[[1]]", 10) == 2


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(("depth", "ok"), [(MAX_DEPTH - 1, True), (MAX_DEPTH, False), (200, False)])
def test_a_page_measured_on_its_bytes_keeps_the_exact_limit(depth: int, ok: bool) -> None:
    # A record is itself one level: {"x": [..depth arrays..]} nests depth + 1.
    items = [{"id": 1, "updated_at": NOW}, {"id": 2, "updated_at": NOW, "x": _nested(depth)}]
    body = json.dumps(items).encode()
    measured = nesting_depth(body, MAX_DEPTH + 1)
    if ok:
        assert measured == depth + 2
        assert check_page("/invoices", loads(body), NOW, now=NOW, depth=measured) == items
    else:
        assert measured is None  # deeper than the contract: the records are walked to name one
        with pytest.raises(ContractError, match="record 2 of 2 breaks the API contract: id 2: nested deeper than"):
            check_page("/invoices", loads(body), NOW, now=NOW, depth=measured)
