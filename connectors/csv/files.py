"""Writing CSV files that spreadsheets open safely, replaced atomically."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import simplejson

from syncd.files import replaced

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _is_number(text: str) -> bool:
    try:
        Decimal(text.strip())
    except InvalidOperation:
        return False
    return True


def cell(value: Any) -> str:
    """One cell's text: exact decimals, ISO dates, and formulas neutralised.

    A text cell a spreadsheet would execute (starting with = + - @ tab or CR) is
    prefixed with a quote, unless it is a plain number such as -12.50.
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dict | list):
        value = simplejson.dumps(value, use_decimal=True, sort_keys=True)
    text = str(value)
    if text.startswith(_FORMULA_START) and not _is_number(text):
        return "'" + text
    return text


def write_atomic(path: Path, header: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> int:
    """Write a CSV (UTF-8, RFC 4180, CRLF) and replace `path` with it atomically; rows written."""
    count = 0
    with replaced(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, dialect="excel", quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
        writer.writerow(header)
        for row in rows:
            writer.writerow([cell(row.get(col)) for col in header])
            count += 1
    return count
