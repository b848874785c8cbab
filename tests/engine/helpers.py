"""Helpers for end-to-end sync tests: settings for a sandbox, CSV contents vs sandbox data."""

from __future__ import annotations

import csv
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from connectors.csv.files import cell
from syncd import registry
from syncd.config import Settings
from syncd.mapping import load_mapping
from syncd.plugin import Connector, Record

ROOT = Path(__file__).resolve().parents[2]
CSV_MAPPING = ROOT / "mappings" / "csv.toml"
STREAMS = ("customers", "invoices", "transactions")


def settings_for(sandbox: Any, store_url: str, out: Path, **extra: Any) -> Settings:
    """Settings that sync `sandbox` into CSV files in `out`."""
    data: dict[str, Any] = {
        "invoiced": {"base_url": sandbox.url, "api_key": sandbox.api_key, "retry_budget": 120.0},
        "store": {"url": store_url},
        "connectors": {"csv": {"enabled": True, "directory": str(out), "mapping": str(CSV_MAPPING)}},
    }
    for key, value in extra.items():
        if key == "connectors":  # one level deeper: a connector's own keys merge too
            value = {name: {**data[key].get(name, {}), **section} for name, section in value.items()}
        data[key] = {**data.get(key, {}), **value}
    return Settings(**data)


def read_csv_dir(out: Path) -> dict[str, list[list[str]]]:
    """Every CSV file in `out` as rows of cells (header first)."""
    tables = {}
    for path in sorted(out.glob("*.csv")):
        with path.open(encoding="utf-8", newline="") as fh:
            tables[path.stem] = list(csv.reader(fh))
    return tables


def expected_csv(
    sandbox: Any, mapping_path: Path = CSV_MAPPING, keep: Mapping[str, Callable[[Any], bool]] | None = None
) -> dict[str, list[list[str]]]:
    """What the CSV files must hold: the sandbox's current data (`keep`: each stream's scope)
    through the mapping."""
    mapping = load_mapping(mapping_path)
    keep = keep or {}
    objects = {
        s: {str(o["id"]): o for o in sandbox.data.list(s) if keep.get(s, lambda _: True)(o)} for s in STREAMS
    }

    def resolve(stream: str, rid: str) -> dict[str, Any] | None:
        return objects.get(stream, {}).get(rid)

    tables: dict[str, list[tuple[int, int, list[str]]]] = {}
    headers: dict[str, list[str]] = {}
    for stream in STREAMS:
        for rid, obj in objects[stream].items():
            record = Record(stream, rid, int(obj["updated_at"]), obj)
            for table, rows in mapping.apply(record, resolve).items():
                for i, row in enumerate(rows):
                    headers.setdefault(table, list(row.keys()))
                    tables.setdefault(table, []).append((int(rid), i, [cell(v) for v in row.values()]))
    return {t: [headers[t]] + [r for _, _, r in sorted(rows)] for t, rows in tables.items()}


def assert_csv_matches(sandbox: Any, out: Path, keep: Mapping[str, Callable[[Any], bool]] | None = None) -> None:
    """The CSV files equal the sandbox's data: nothing missing, nothing stale, nothing extra."""
    actual, expected = read_csv_dir(out), expected_csv(sandbox, keep=keep)
    for table, rows in expected.items():
        got = actual.get(table, [])
        assert got[:1] == rows[:1], f"{table}.csv header"
        missing = [r for r in rows[1:] if r not in got[1:]]
        extra = [r for r in got[1:] if r not in rows[1:]]
        assert not missing and not extra, f"{table}.csv: {len(missing)} missing/stale, {len(extra)} extra/stale"
        assert got == rows, f"{table}.csv order"


def install_connector(monkeypatch: pytest.MonkeyPatch, name: str, cls: type[Connector]) -> None:
    """Make connector `name` resolve to `cls` for this test (the others as installed)."""
    real = registry.connector_class

    def lookup(wanted: str, *, config_path: str | None = None) -> type[Connector]:
        return cls if wanted == name else real(wanted, config_path=config_path)

    monkeypatch.setattr(registry, "connector_class", lookup)
