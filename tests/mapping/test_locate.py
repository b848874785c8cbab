"""The TOML locator: positions of keys, values, array elements and inline-table keys."""

from __future__ import annotations

import tomllib

from syncd.mapping.locate import locate

DOC = '''# comment with "quotes" and [brackets]
[defaults]
timezone = "UTC"   # trailing

[tables.a]
stream = "invoices"
note = """multi
line ] } " string"""
skip = [
  { path = "draft", equals = true },   # one
  { "path" = 'status', in = ["a", "b"] },
]

[[tables.a.fields]]
name = "x"
transforms = ["upper", { truncate = 3 }]

[[tables.a.fields]]
name = "y"
when = 1979-05-27 07:32:00Z
after = "z"

[tables."b.c"]
stream = 'customers'
'''


def test_locates_keys_values_and_nested_elements() -> None:
    tomllib.loads(DOC)  # the locator only sees documents tomllib accepts
    loc = locate(DOC)
    assert loc.keys[("defaults", "timezone")] == (3, 1)
    assert loc.values[("defaults", "timezone")] == (3, 12)
    assert loc.values[("tables", "a", "stream")] == (6, 10)
    assert loc.values[("tables", "a", "skip", 0)] == (10, 3)
    assert loc.values[("tables", "a", "skip", 0, "path")] == (10, 12)
    assert loc.keys[("tables", "a", "skip", 1, "path")] == (11, 5)
    assert loc.values[("tables", "a", "skip", 1, "in", 1)] == (11, 35)
    assert loc.keys[("tables", "a", "fields", 0)] == (14, 1)
    assert loc.values[("tables", "a", "fields", 0, "transforms", 1)] == (16, 24)
    assert loc.keys[("tables", "a", "fields", 0, "transforms", 1, "truncate")] == (16, 26)
    assert loc.keys[("tables", "a", "fields", 1, "name")] == (19, 1)
    assert loc.keys[("tables", "a", "fields", 1, "after")] == (21, 1)
    assert loc.values[("tables", "b.c", "stream")] == (24, 10)


def test_unknown_paths_fall_back_to_the_nearest_enclosing_position() -> None:
    loc = locate(DOC)
    assert loc.value(("tables", "a", "fields", 1, "nothing", 3)) == (18, 1)
    assert loc.key(("nowhere",)) is None


def _paths(value: object, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            out += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            out += _paths(child, (*prefix, index))
    return out


def test_every_key_and_element_of_the_shipped_mappings_has_its_own_position() -> None:
    from tests.mapping.helpers import MAPPINGS

    for path in sorted(MAPPINGS.glob("*.toml")):
        text = path.read_text(encoding="utf-8")
        loc = locate(text)
        lines = text.splitlines()
        for p in _paths(tomllib.loads(text)):
            exact = loc.keys.get(p) or loc.values.get(p)
            assert exact is not None, (path.name, p)
            line, column = exact
            assert 1 <= column <= len(lines[line - 1]), (path.name, p)
            if isinstance(p[-1], str) and p in loc.keys and p not in loc.values:
                continue  # a table header
            if isinstance(p[-1], str) and p in loc.keys:
                # a `key = value` line: the key's text is at the key's position
                key_line, key_col = loc.keys[p]
                assert lines[key_line - 1][key_col - 1 :].lstrip("\"'").startswith(p[-1]), (path.name, p)
