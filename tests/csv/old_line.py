"""`files.line` and `_json_text` as they were before the compiled line writers (commit fec012d):
the reference test_linecode.py holds `linecode.line_writer` and `files` to. Frozen: do not edit."""

# ruff: noqa
# mypy: ignore-errors

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import simplejson


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# simplejson.dumps with options builds an encoder per call; this one is what it builds.
_JSON = simplejson.JSONEncoder(use_decimal=True, sort_keys=True)
# The standard library's C encoder writes the same text for values without a Decimal, faster.
_PLAIN_JSON = json.JSONEncoder(sort_keys=True)


def _json_text(value: Any) -> str:
    if not value:  # most metadata is empty: the text both encoders write for it
        return "{}" if isinstance(value, dict) else "[]"
    try:
        return _PLAIN_JSON.encode(value)
    except TypeError:  # a Decimal inside: simplejson writes it as an exact number
        return _JSON.encode(value)


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
        value = _json_text(value)
    text = str(value)
    if text.startswith(_FORMULA_START) and not _is_number(text):
        return "'" + text
    return text


def texts(columns: Iterable[str], row: Mapping[str, Any]) -> dict[str, str]:
    """The non-empty cells of a row by column, as `cell` writes them."""
    out: dict[str, str] = {}
    for column in columns:
        value = row.get(column)
        if value is None:
            continue
        if type(value) is str:  # the common case, kept off cell()'s chain of checks
            if value:
                out[column] = cell(value) if value.startswith(_FORMULA_START) else value
        elif text := cell(value):
            out[column] = text
    return out


def _text(value: Any) -> str:
    """`cell`, with a short cut for text that is already a safe cell."""
    if type(value) is str and not value.startswith(_FORMULA_START):
        return value
    return cell(value)


def _decimal_text(value: Decimal) -> str:
    """`format(value, "f")`, by the faster str() when that writes no exponent (the same text)."""
    text = str(value)
    return format(value, "f") if "E" in text else text


def line(columns: Sequence[str], row: Mapping[str, Any]) -> str:
    """The CSV line of a row, without its CRLF: what `write_atomic` writes for it.

    Cells as `cell` writes them, quoted as csv.writer's excel dialect does (QUOTE_MINIMAL).
    A row keeps only this text in the store, so it is written once, never again per render.
    """
    cells: list[str] = []
    for column in columns:
        value: Any = row.get(column)
        kind = type(value)
        # The common types first, each as `cell` writes it, off its chain of checks.
        if kind is str:
            if value.startswith(_FORMULA_START):
                value = cell(value)
        elif value is None:
            value = ""
        elif kind is Decimal:
            value = _decimal_text(value)
        elif kind is int:
            value = str(value)
        elif kind is bool:
            value = "true" if value else "false"
        else:
            value = cell(value)
        cells.append(value)
    return join(cells)


def join(cells: list[str]) -> str:
    """csv.writer's line (excel dialect, QUOTE_MINIMAL) of cell texts, without its CRLF."""
    text = ",".join(cells)
    # One scan of the line finds whether any cell needs quotes (most do not).
    if '"' in text or "\n" in text or "\r" in text or text.count(",") != len(cells) - 1:
        text = ",".join(_quoted(c) for c in cells)
    elif not text and len(cells) == 1:
        return '""'  # csv.writer quotes a lone empty cell, or the line would be blank
    return text


def _quoted(text: str) -> str:
    if '"' in text or "," in text or "\n" in text or "\r" in text:
        return '"' + text.replace('"', '""') + '"'
    return text


