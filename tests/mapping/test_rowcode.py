"""The generated row builders and the shortcuts of the hot steps: taken, safe, and exact."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncd.errors import MappingError
from syncd.mapping import MappingSet, load_mapping, transforms
from syncd.mapping.transforms import ApplyError, Defaults, Env, compile_step
from syncd.plugin import Record
from syncd.sandbox.data import SandboxData
from tests.mapping.helpers import MAPPINGS, apply, load, write


def test_dict_records_never_take_the_general_path(monkeypatch: pytest.MonkeyPatch) -> None:
    data = SandboxData.seeded(seed=2, customers=6, invoices=30, transactions=15)

    def resolve(stream: str, rid: str) -> Mapping[str, Any] | None:
        return data.get(stream, rid)

    def general(*args: Any) -> None:
        raise AssertionError("general path taken")

    monkeypatch.setattr(MappingSet, "_general", general)
    rows = 0
    for path in sorted(MAPPINGS.glob("*.toml")):
        mapping = load_mapping(path)
        for stream in ("customers", "invoices", "transactions"):
            for obj in data.list(stream):
                out = mapping.apply(Record(stream, str(obj["id"]), 0, obj), resolve)
                rows += sum(len(r) for r in out.values())
    assert rows > 200


def test_names_keys_and_values_from_the_file_are_data_not_code(tmp_path: Path) -> None:
    mapping = load(
        tmp_path,
        """
[tables.t]
stream = "invoices"
rows = "items"
fields = [
  { name = "a\\"}; raise SystemExit #", from = "metadata.k'\\"x" },
  { name = "b')\\nimport os #", value = "\\"), exec('1') #" },
  { name = "__builtins__", from = "items[].metadata.q\\"uote" },
  { name = "d", template = "{number} %s %(x)s {{" },
]
""",
    )
    data = {"number": "N", "metadata": {"k'\"x": 1}, "items": [{"metadata": {'q"uote': 2}}]}
    assert apply(mapping, "invoices", data)["t"] == [
        {
            'a"}; raise SystemExit #': 1,
            "b')\nimport os #": "\"), exec('1') #",
            "__builtins__": 2,
            "d": "N %s %(x)s {",
        }
    ]


def test_the_first_failing_column_of_the_first_row_is_named(tmp_path: Path) -> None:
    # the builder computes record-level columns before the rows: the error must not say so
    mapping = load(
        tmp_path,
        """
[tables.t]
stream = "invoices"
rows = "items"
fields = [
  { name = "line", from = "items[].amount", transforms = ["money"] },
  { name = "total", from = "total", transforms = ["money"] },
]
""",
    )
    data = {"currency": "usd", "total": "bad total", "items": [{"amount": "bad line"}]}
    with pytest.raises(MappingError, match=r"t\.line: expected a number, got \"bad line\""):
        apply(mapping, "invoices", data)
    data["items"] = [{"amount": 1}]
    with pytest.raises(MappingError, match=r"t\.total: expected a number, got \"bad total\""):
        apply(mapping, "invoices", data)


def test_rows_that_are_not_dicts_map_as_before(tmp_path: Path) -> None:
    mapping = load(
        tmp_path,
        """
[tables.t]
stream = "invoices"
rows = "items"
fields = [{ name = "id", from = "items[].id" }, { name = "n", from = "number" }]
""",
    )
    data = {"number": "N", "items": [{"id": 1}, 5, None, {"id": 2}]}
    assert apply(mapping, "invoices", data)["t"] == [
        {"id": 1, "n": "N"},
        {"id": None, "n": "N"},
        {"id": None, "n": "N"},
        {"id": 2, "n": "N"},
    ]


@pytest.mark.parametrize("zone", ["UTC", "Etc/UTC"])
def test_utc_iso_datetimes_equal_isoformat_across_hours_and_eras(zone: str) -> None:
    step = compile_step("datetime", Defaults(timezone=zone), lambda text: pytest.fail(text), {})
    env = Env({}, None, lambda s, r: None)
    tz = ZoneInfo(zone)
    edges = [0, -1, 1, 3599, 3600, -3600, -3601, 86399, 951782400, 1700000000, 4102444799]
    extremes = [-62135596800, -62135596800 + 3599, 253402300799, 253402297200]
    stamps = [*edges, *extremes, *range(1699999000, 1700009000, 7), *range(-7300, 7300, 13)]
    for stamp in stamps * 2:  # the second time from the kept hours
        assert step.apply(stamp, env) == dt.datetime.fromtimestamp(stamp, tz).isoformat(), stamp
    for bad in (253402300800, -62135596801, 10**20):
        with pytest.raises(ApplyError, match="expected a unix timestamp"):
            step.apply(bad, env)
    assert step.apply(None, env) is None
    assert step.apply("", env) is None
    assert step.apply("1700000000", env) == "2023-11-14T22:13:20+00:00"


def test_references_are_looked_up_once_per_record_by_every_path(tmp_path: Path) -> None:
    mapping = load(
        tmp_path,
        """
[tables.t]
stream = "invoices"
fields = [
  { name = "n", from = "customer.name" },
  { name = "k", from = "customer.number", transforms = ["text"] },
  { name = "tpl", template = "{customer.name}/{customer.number}" },
  { name = "meta", from = "customer.metadata.region" },
]
""",
    )
    calls: list[tuple[str, str]] = []

    def resolve(stream: str, rid: str) -> Mapping[str, Any] | None:
        calls.append((stream, rid))
        return {"name": "Acme", "number": 7, "metadata": {"region": "EU"}} if rid == "3" else None

    for customer, want in ((3, ["Acme", "7", "Acme/7", "EU"]), (4, [None, None, "/", None])):
        calls.clear()
        record = Record("invoices", "1", 0, {"customer": customer})
        assert list(mapping.apply(record, resolve)["t"][0].values()) == want
        assert calls == [("customers", str(customer))]
    expanded = Record("invoices", "1", 0, {"customer": {"name": "X", "number": "C"}})
    calls.clear()
    assert mapping.apply(expanded, resolve)["t"][0]["tpl"] == "X/C"
    assert calls == []


# One mapping per column, so that a step that refuses a value hides no other column.
INLINE_COLUMNS = [
    ("", '{ name = "up", from = "name", transforms = ["upper"] }'),
    ("", '{ name = "low", from = "name", transforms = ["lower", "strip"] }'),
    ("", '{ name = "dec", from = "total", transforms = ["decimal"] }'),
    ("", '{ name = "day", from = "date", transforms = ["date"] }'),
    ("", '{ name = "paris", from = "date", transforms = [{ date = "%Y-%m-%d", tz = "Europe/Paris" }] }'),
    ("", '{ name = "when", from = "date", transforms = ["datetime"] }'),
    ("", '{ name = "money", from = "subtotal", transforms = ["money"] }'),
    ("", '{ name = "sum", from = "items[].amount", transforms = ["sum", "money"] }'),
    ("", '{ name = "total", from = "items[].amount", transforms = ["sum"] }'),
    ("", '{ name = "day_utc", from = "date", transforms = [{ date = "%Y-%m-%d", tz = "UTC" }] }'),
    ("", '{ name = "day_etc", from = "date", transforms = [{ date = "%Y-%m-%d", tz = "Etc/UTC" }] }'),
    ("", '{ name = "week", from = "date", transforms = [{ date = "%Y %A", tz = "UTC" }] }'),
    ("", '{ name = "when_paris", from = "date", transforms = [{ datetime = "iso", tz = "Europe/Paris" }] }'),
    ('rows = "items"', '{ name = "amount", from = "items[].amount", transforms = ["money"] }'),
    (
        'rows = "items"',
        '{ name = "own", from = "items[].amount", transforms = [{ money = "items[].type" }] }',
    ),
    ('rows = "items"', '{ name = "day", from = "items[].updated_at", transforms = ["date"] }'),
    ('rows = "items"', '{ name = "up", from = "items[].name", transforms = ["upper"] }'),
    ("", '{ name = "payee", from = "name", transforms = [{ default = "n/a" }] }'),
    ("", '{ name = "text", from = "name", transforms = ["text"] }'),
    (
        "",
        '{ name = "kind", from = "name", transforms = [{ map = { abc = "A", x = 2, "Zoë" = true }, fallback = "-" }] }',
    ),
    ("", '{ name = "strict", from = "name", transforms = [{ map = { abc = "A", "" = 0 } }] }'),
    ("", '{ name = "tpl", template = "{name} ({currency}) {total}%" }'),
    (
        'rows = "items"',
        '{ name = "acct", from = "items[].type", transforms = [{ map = { usd = "U" }, fallback = 1 }] }',
    ),
    ('rows = "items"', '{ name = "tpl", template = "{items[].name}:{currency}" }'),
]
_ODD = [None, "", True, False, 0, -1, 7, 10**20, 1.5, "abc", " 1700000000 ", "x", [], {"k": 1}]
_STAMPS = [
    1700000000,
    1700003599,
    1700006399,
    1700006400,
    1700010000,
    -62135596800,
    253402300799,
    Decimal("1700000000.5"),
    *_ODD,
]
_NUMBERS = [
    Decimal("1.005"),
    Decimal("-2.5"),
    Decimal("1E+2"),
    Decimal("NaN"),
    Decimal("-Infinity"),
    "2.5",
    *_ODD,
]
_CURRENCIES = ["usd", "JPY", "EUR", "", None, 5, True, ["x"]]


def _outcome(mapping: MappingSet, data: Mapping[str, Any]) -> Any:
    try:
        return apply(mapping, "invoices", data)
    except MappingError as exc:
        return (str(exc), exc.line, exc.field)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.fixed_dictionaries(
        {
            "name": st.sampled_from(["Zoë", " a b ", *_ODD]),
            "total": st.sampled_from(_NUMBERS),
            "subtotal": st.sampled_from(_NUMBERS),
            "date": st.sampled_from(_STAMPS),
            "currency": st.sampled_from(_CURRENCIES),
            "items": st.lists(
                st.fixed_dictionaries(
                    {
                        "amount": st.sampled_from(_NUMBERS),
                        "type": st.sampled_from(_CURRENCIES),
                        "updated_at": st.sampled_from(_STAMPS),
                        "name": st.sampled_from(["ß", *_ODD]),
                    }
                ),
                max_size=3,
            ),
        }
    )
)
def test_steps_written_inline_answer_what_their_apply_does(tmp_path: Path, data: dict[str, Any]) -> None:
    """A dict record (the row builders, steps inline) maps as a read-only one (column by column)."""
    if not _INLINE_MAPPINGS:
        for i, (rows, column) in enumerate(INLINE_COLUMNS):
            text = f'[defaults]\ncurrency_digits = {{ EUR = 3 }}\n[tables.t]\nstream = "invoices"\n{rows}\nfields = [{column}]\n'
            _INLINE_MAPPINGS.append(load_mapping(write(tmp_path, text, f"m{i}.toml")))
    for mapping in _INLINE_MAPPINGS:
        general = _outcome(mapping, MappingProxyType(data))
        for _ in range(2):  # the second time from the steps' kept texts and quanta
            assert repr(_outcome(mapping, data)) == repr(general)


_INLINE_MAPPINGS: list[MappingSet] = []


@pytest.mark.parametrize("zone", ["UTC", "Europe/Paris", "America/Los_Angeles"])
def test_default_dates_equal_strftime_across_eras(zone: str) -> None:
    """`%Y-%m-%d` is written by `date().isoformat()` from year 1000 (strftime pads no year)."""
    step = compile_step("date", Defaults(timezone=zone), lambda text: pytest.fail(text), {})
    env = Env({}, None, lambda s, r: None)
    tz = ZoneInfo(zone)
    stamps = [0, -1, 86399, 1700000000, -62135596800 + 2 * 86400, -50000000000, -30610224000, 253402128000]
    for stamp in [*stamps, *range(-86400 * 3, 86400 * 3, 3600 * 7)] * 2:
        assert step.apply(stamp, env) == dt.datetime.fromtimestamp(stamp, tz).strftime("%Y-%m-%d"), stamp


def test_date_steps_of_every_mapping_share_the_texts_they_formatted(monkeypatch: pytest.MonkeyPatch) -> None:
    """A first sync formats each day once, not once per date column and per mapping."""
    transforms.forget_formatted()
    calls: list[Any] = []
    timestamp = transforms._timestamp
    monkeypatch.setattr(
        transforms, "_timestamp", lambda value, tz: calls.append(value) or timestamp(value, tz)
    )
    csv, ledger = load_mapping(MAPPINGS / "csv.toml"), load_mapping(MAPPINGS / "ledger.toml")
    day = 1700000000 - 1700000000 % 86400
    invoice = {"id": 1, "currency": "usd", "date": day + 1, "due_date": day + 2, "created_at": day + 3}
    invoice |= {"updated_at": day + 4, "items": [{"id": 2, "amount": Decimal("1.00")}], "total": 1}
    for mapping in (csv, ledger):
        apply(mapping, "invoices", invoice)
    # one for the dates, one for the datetime (ISO 8601 in UTC keeps the day apart)
    assert calls == [day + 1, day + 4]
    rows = apply(csv, "invoices", invoice)
    assert (rows["invoices"][0]["date"], rows["invoices"][0]["updated"]) == (
        "2023-11-14",
        "2023-11-14T00:00:04+00:00",
    )
    transforms.forget_formatted()
    apply(ledger, "invoices", invoice)
    assert calls[2:] == [day + 1]
