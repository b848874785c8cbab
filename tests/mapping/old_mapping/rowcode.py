# ruff: noqa
# mypy: ignore-errors
"""Row builders: a table's columns compiled into one function that returns its rows.

Filling a row column by column costs, per column, a loop turn, a test of the column's kind
and a call or two of closures. A row builder is one function whose row is a single dict
display: a plain key is an inline `d.get(k)`, a transform chain nested calls of the steps'
own closures, any other source a call of its compiled getter.

The function's text is assembled from fixed fragments and names made of a letter and the
column's position (`k3`, `s3_0`). Everything that comes from the file (column names, keys,
constants, the compiled steps) reaches the function as a closure variable: no text of the
file is ever part of the code.

A builder reads the record, and the elements of a row table, with `dict.get`: callers use
it only for a dict record, and a rows builder answers None for an element that is not a
dict. It does not say which column a step refused: on any exception the caller fills the
table again column by column, which raises the error it always raised.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from tests.mapping.old_mapping.transforms import Env, Inline

RecordBuilder = Callable[[dict[str, Any], Env], dict[str, Any]]
RowsBuilder = Callable[[dict[str, Any], Sequence[Any], Env], "list[dict[str, Any]] | None"]


class Spec(NamedTuple):
    """What a builder needs of one column."""

    name: str
    kind: str  # "key": `source` is a key of the record; "row_key": of the row; "get": a
    # getter taking the Env; "value": the constant itself
    source: Any
    steps: tuple[Callable[[Any, Env], Any], ...]  # the chain's `apply`s, in order
    reads_row: bool  # computed per row; otherwise once per record, shared by its rows
    inlines: tuple[Inline | None, ...] = ()  # per step, how to write its usual case inline


def record_builder(specs: Sequence[Spec]) -> RecordBuilder:
    """`build(data, env)`: the one row of a table without `rows`."""
    cells: dict[str, Any] = {}
    items = ", ".join(f"n{i}: {_expr(i, spec, cells)}" for i, spec in enumerate(specs))
    builder: RecordBuilder = _define(["def build(d, env):", f"    return {{{items}}}"], cells)
    return builder


def rows_builder(specs: Sequence[Spec]) -> RowsBuilder:
    """`build(data, elements, env)`: a row per element, or None if an element is not a dict.

    Columns that do not read the row are computed once, before the first row.
    """
    cells: dict[str, Any] = {}
    shared, items = [], []
    for i, spec in enumerate(specs):
        expr = _expr(i, spec, cells)
        if spec.reads_row:
            items.append(f"n{i}: {expr}")
        else:
            shared.append(f"    r{i} = {expr}")
            items.append(f"n{i}: r{i}")
    guard = any(spec.kind == "row_key" for spec in specs)
    body = [
        "def build(d, elements, env):",
        *shared,
        "    rows = []",
        "    append = rows.append",
        "    for e in elements:",
        *(["        if type(e) is not dict:", "            return None"] if guard else []),
        "        env.row = e",
        f"        append({{{', '.join(items)}}})",
        "    return rows",
    ]
    builder: RowsBuilder = _define(body, cells)
    return builder


def _expr(i: int, spec: Spec, cells: dict[str, Any]) -> str:
    """Column `i`'s value as an expression of `d` (record), `e` (row) and `env`."""
    cells[f"n{i}"] = spec.name
    if spec.kind in ("key", "row_key"):
        cells[f"k{i}"] = spec.source
        text = f"{'d' if spec.kind == 'key' else 'e'}.get(k{i})"
    elif spec.kind == "get":
        cells[f"g{i}"] = spec.source
        text = f"g{i}(env)"
    elif spec.kind == "value":
        cells[f"c{i}"] = spec.source
        text = f"c{i}"
    else:
        raise ValueError(f"unknown column kind {spec.kind!r}")
    for j, step in enumerate(spec.steps):
        cells[f"s{i}_{j}"] = step
        inline = spec.inlines[j] if j < len(spec.inlines) else None
        if inline is None:
            text = f"s{i}_{j}({text}, env)"
            continue
        names = {name: f"{name}{i}_{j}" for name in inline.cells}
        cells.update({names[name]: value for name, value in inline.cells.items()})
        text = (
            "("
            + inline.expr.format(input=text, v=f"v{i}_{j}", t=f"t{i}_{j}", apply=f"s{i}_{j}", **names)
            + ")"
        )
    return text


def _define(body: list[str], cells: dict[str, Any]) -> Any:
    """Run `def factory(<cells>): <body>; return build` and call it with the cells."""
    lines = [f"def factory({', '.join(cells)}):", *(f"    {line}" for line in body), "    return build"]
    scope: dict[str, Any] = {}
    code = compile("\n".join(lines), "<syncd mapping row builder>", "exec")
    exec(code, {"__builtins__": {"type": type, "dict": dict}}, scope)  # noqa: S102 - fixed fragments only
    return scope["factory"](**cells)
