"""Writing CSV files that spreadsheets open safely, replaced atomically."""

from __future__ import annotations

import csv
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import simplejson

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
    """Write a CSV (UTF-8, RFC 4180, CRLF) to a temp file, fsync, then rename over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    count = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh, dialect="excel", quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
            writer.writerow(header)
            for row in rows:
                writer.writerow([cell(row.get(col)) for col in header])
                count += 1
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return count
