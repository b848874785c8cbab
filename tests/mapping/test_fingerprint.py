"""The fingerprint changes iff the effective mapping changes."""

from __future__ import annotations

from pathlib import Path

from syncd.mapping import load_mapping
from tests.mapping.helpers import MAPPINGS, load

BASE = """
[defaults]
timezone = "UTC"

[values.stage]
paid = "won"

[tables.a]
stream = "invoices"
skip = [{ path = "draft", equals = true }]

[[tables.a.fields]]
name = "id"
from = "id"

[[tables.a.fields]]
name = "stage"
from = "status"
transforms = [{ map = "stage", fallback = "open" }]

[tables.b]
stream = "customers"
fields = [{ name = "id", from = "id" }]
"""

SAME = """
# the same mapping, written differently
[tables.b]
fields = [ { from = "id", name = "id" } ]
stream = 'customers'

[tables.a]
skip = [ { equals = true, path = "draft" } ]
stream = "invoices"
fields = [
  { name = "id", from = "id" },   # id first
  { from = "status", name = "stage", transforms = [ { map = "stage", fallback = "open" } ] },
]

[values.stage]
paid = 'won'

[values.unused]
x = "y"
"""


def test_same_effective_mapping_same_fingerprint(tmp_path: Path) -> None:
    a = load(tmp_path, BASE)
    b = load(tmp_path, SAME)  # no [defaults]: UTC is the default anyway
    assert a.fingerprint == b.fingerprint
    assert load(tmp_path, BASE).fingerprint == a.fingerprint
    assert load_mapping(MAPPINGS / "csv.toml").fingerprint == load_mapping(MAPPINGS / "csv.toml").fingerprint


def test_every_effective_edit_changes_the_fingerprint(tmp_path: Path) -> None:
    base = load(tmp_path, BASE).fingerprint
    edits = {
        "column renamed": BASE.replace('name = "stage"', 'name = "deal_stage"'),
        "source changed": BASE.replace('from = "status"', 'from = "number"'),
        "columns reordered": BASE.replace('[[tables.a.fields]]\nname = "id"\nfrom = "id"\n\n', "").replace(
            "[tables.b]", '[[tables.a.fields]]\nname = "id"\nfrom = "id"\n\n[tables.b]'
        ),
        "value table entry": BASE.replace('paid = "won"', 'paid = "closedwon"'),
        "fallback": BASE.replace('fallback = "open"', 'fallback = "lost"'),
        "filter": BASE.replace("equals = true", "equals = false"),
        "table stream": BASE.replace('stream = "customers"', 'stream = "transactions"'),
    }
    seen = {base}
    for what, text in edits.items():
        fingerprint = load(tmp_path, text).fingerprint
        assert fingerprint not in seen, what
        seen.add(fingerprint)


def test_timezone_counts_only_where_a_date_uses_it(tmp_path: Path) -> None:
    plain = load(tmp_path, BASE).fingerprint
    with_date = (
        BASE
        + '\n[tables.c]\nstream = "invoices"\nfields = [{ name = "d", from = "date", transforms = ["date"] }]\n'
    )
    utc = load(tmp_path, with_date).fingerprint
    paris = load(tmp_path, with_date.replace('timezone = "UTC"', 'timezone = "Europe/Paris"')).fingerprint
    assert utc != paris != plain
