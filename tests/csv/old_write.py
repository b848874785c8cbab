"""`files.line`, `files.join`, `linecode.line_writer` and what `CsvConnector._rows` keeps of a row,
as they were before the line writers specialised by cell types (commit 509b605): the reference
test_write.py holds the connector's stored rows to. Frozen: do not edit."""

# ruff: noqa
# mypy: ignore-errors

from __future__ import annotations

import operator
import re
from collections.abc import Callable
import json
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from json.encoder import c_make_encoder, encode_basestring_ascii
from typing import Any

import simplejson

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# simplejson.dumps with options builds an encoder per call; this one is what it builds.
_JSON = simplejson.JSONEncoder(use_decimal=True, sort_keys=True)
# The standard library's C encoder writes the same text for values without a Decimal, faster.
_PLAIN_JSON = json.JSONEncoder(sort_keys=True)
# What `_PLAIN_JSON.encode` runs, built once: it builds it on every call, which costs more
# than encoding a small object. No markers (the circular check): a circular value (never
# decoded JSON) recurses until RecursionError, then `_PLAIN_JSON` raises what it always did.
_ENCODE = (
    c_make_encoder(None, _PLAIN_JSON.default, encode_basestring_ascii, None, ": ", ", ", True, False, True)
    if c_make_encoder is not None
    else None
)


def _json_text(value: Any) -> str:
    if not value:  # most metadata is empty: the text both encoders write for it
        return "{}" if isinstance(value, dict) else "[]"
    try:
        if _ENCODE is not None and type(value) in (dict, list):
            try:
                return "".join(_ENCODE(value, 0))
            except RecursionError:
                pass
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
        # `_quoted` of each cell, inline: a call per cell costs more than its tests
        text = ",".join(
            [
                '"' + c.replace('"', '""') + '"' if '"' in c or "," in c or "\n" in c or "\r" in c else c
                for c in cells
            ]
        )
    elif not text and len(cells) == 1:
        return '""'  # csv.writer quotes a lone empty cell, or the line would be blank
    return text


LineWriter = Callable[[Mapping[str, Any]], str]

_BOOL_TEXT = {True: "true", False: "false"}
# What `files.line` writes for each exact type; any other type (and a text that may start a
# formula): `cell`.
_CONVERT: dict[type, Callable[[Any], str]] = {
    Decimal: _decimal_text,
    int: str,
    bool: _BOOL_TEXT.__getitem__,
    dict: _json_text,  # (JSON never starts with a formula character: what `cell` writes)
    list: _json_text,
}


def _finish(values: Sequence[Any], cells: list[str]) -> str:
    """The line of cells where a text may start a formula: those texts as `cell` writes them."""
    return join(
        [
            cell(value) if type(value) is str and value.startswith(_FORMULA_START) else text
            for value, text in zip(values, cells, strict=True)
        ]
    )


def line_writer(columns: Sequence[str]) -> LineWriter:
    """`write(row)`: `files.line(columns, row)`, compiled for these columns."""
    columns = list(columns)
    n = len(columns)
    if n < 2:  # (no table has fewer columns; `files.line` handles the lone empty cell)
        return lambda row: line(columns, row)
    names = [f"v{i}" for i in range(n)]
    # (a Decimal's str() is its "f" format unless it has an exponent: `_decimal_text`, inline)
    cells = ", ".join(
        f'{v} if type({v}) is str else "" if {v} is None'
        f' else t if type({v}) is decimal and "E" not in (t := str({v})) else convert(type({v}), cell)({v})'
        for v in names
    )
    body = [
        "def write(row):",
        "    if type(row) is not dict:",
        "        return line(columns, row)",
        "    try:",
        "        values = get(row)",
        "    except KeyError:  # a row without some column (stored cell texts)",
        "        return line(columns, row)",
        f"    {', '.join(names)} = values",
        f"    cells = [{cells}]",
        '    text = ",".join(cells)',
        # A cell that may start a formula starts the line or follows a comma. "=" and "@"
        # are rare in a line, "-" and "+" in every date: those are looked for after commas.
        "    if (",
        "        text.startswith(formula) or ',-' in text or ',+' in text",
        "        or ('=' in text and ',=' in text) or ('@' in text and ',@' in text)",
        "        or '\\t' in text or '\\r' in text",
        "    ):",
        "        return finish(values, cells)",
        f"    if '\"' in text or '\\n' in text or text.count(',') != {n - 1}:",
        "        return join(cells)",
        "    return text",
    ]
    source = "\n".join(
        [
            "def factory(get, columns, line, convert, cell, formula, join, decimal, finish):",
            *(f"    {text}" for text in body),
            "    return write",
        ]
    )
    scope: dict[str, Any] = {}
    builtins = {"type": type, "dict": dict, "str": str, "KeyError": KeyError}
    exec(compile(source, "<csv line writer>", "exec"), {"__builtins__": builtins}, scope)  # noqa: S102 - fixed fragments only
    writer: LineWriter = scope["factory"](
        operator.itemgetter(*columns),
        columns,
        line,
        _CONVERT.get,
        cell,
        _FORMULA_START,
        join,
        Decimal,
        _finish,
    )
    return writer


_SURROGATE = re.compile("[\ud800-\udfff]")


def kept(columns, tag, write, rows):
    """`CsvConnector._rows`: what the store keeps of each row."""
    if tag is None:
        return [texts(columns or row, row) for row in rows]
    out = []
    for row in rows:
        text = write(row)
        if "\x00" not in text and (text.isascii() or _SURROGATE.search(text) is None):
            out.append(tag + text)
        else:
            out.append(texts(columns or row, row))
    return out
