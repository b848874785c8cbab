"""A table's CSV line writer compiled once for its columns: `files.line` without its loop.

`files.line` pays, per cell, a loop turn, a `row.get` call and a chain of type tests. The
function built here reads every column of a dict row at once (`operator.itemgetter`) and
writes each cell inline: a text that cannot start a formula as itself, None as empty, a
Decimal, a boolean or an int as `files.line` writes it, anything else through one call that
does what `files.line` does for it. Quotes, when a cell needs them, as `files.join` adds them.

The function's text is fixed fragments and positions (`v3`); the column names reach it only
through the itemgetter, never as code.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from connectors.csv.files import _FORMULA_START, _decimal_text, _json_text, cell, join, line

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
        f' else t if type({v}) is decimal and "E" not in (t := str({v}))'
        f' else "true" if {v} is True else "false" if {v} is False else str({v}) if type({v}) is int'
        f" else convert(type({v}), cell)({v})"
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
        "        text[0] in formula or ',-' in text or ',+' in text",
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
    builtins = {"type": type, "dict": dict, "str": str, "int": int, "KeyError": KeyError}
    exec(compile(source, "<csv line writer>", "exec"), {"__builtins__": builtins}, scope)  # noqa: S102 - fixed fragments only
    writer: LineWriter = scope["factory"](
        operator.itemgetter(*columns),
        columns,
        line,
        _CONVERT.get,
        cell,
        "".join(_FORMULA_START),  # (single characters: `text[0] in` them is `startswith`)
        join,
        Decimal,
        _finish,
    )
    return writer
