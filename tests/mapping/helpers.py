"""Small helpers: write a mapping file, apply it to one record, read API example objects."""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from syncd.mapping import MappingSet, load_mapping
from syncd.plugin import Record

ROOT = Path(__file__).resolve().parents[2]
MAPPINGS = ROOT / "mappings"
EXAMPLES = ROOT / "tests" / "fixtures" / "api-examples"  # copies of the API reference's examples


def example(name: str) -> dict[str, Any]:
    """An API example object from the reference (money as Decimal)."""
    data: dict[str, Any] = json.loads((EXAMPLES / name).read_text(encoding="utf-8"), parse_float=Decimal)
    return data


def write(tmp_path: Path, text: str, name: str = "m.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load(tmp_path: Path, text: str) -> MappingSet:
    return load_mapping(write(tmp_path, text))


def apply(
    mapping: MappingSet,
    stream: str,
    data: Mapping[str, Any],
    others: Mapping[tuple[str, str], Mapping[str, Any]] | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Map one record; references resolve from `others` keyed by (stream, id)."""
    lookups = others or {}

    def resolve(s: str, rid: str) -> Mapping[str, Any] | None:
        return lookups.get((s, rid))

    return mapping.apply(
        Record(stream, str(data.get("id", "1")), int(data.get("updated_at", 0)), data), resolve
    )


def one_field(
    tmp_path: Path, stream: str, field: str, *, extra: str = "", rows: str | None = None
) -> MappingSet:
    """A mapping with one table `t` of one column `v` described by `field` (TOML key lines)."""
    rows_line = f'rows = "{rows}"\n' if rows else ""
    return load(
        tmp_path,
        f'{extra}\n[tables.t]\nstream = "{stream}"\n{rows_line}\n[[tables.t.fields]]\nname = "v"\n{field}\n',
    )


def value(mapping: MappingSet, stream: str, data: Mapping[str, Any], **kw: Any) -> Any:
    rows = apply(mapping, stream, data, **kw)["t"]
    assert len(rows) == 1
    return rows[0]["v"]
