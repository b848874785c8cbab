"""Row builders: a table's columns compiled into one function that returns its rows.

Filling a row column by column costs, per column, a loop turn, a test of the column's kind
and a call or two of closures. A row builder is one function whose row is a single dict
display: a read of the record or the row is inline where it is a key or two (`d.get(k)`),
the id a reference holds, a key of the record a reference names (looked up once per build,
for every column through that reference), or the sum of a key of a list's elements; a
template is one `%` of its reads; a transform chain nests the steps' inline forms or calls.
Any other source is a call of its compiled getter.

The function's text is assembled from fixed fragments and names made of letters and the
column's position (`k3`, `s3_0`, `pk3_1`). Everything that comes from the file (column
names, keys, constants, the compiled steps) reaches the function as a closure variable: no
text of the file is ever part of the code.

A builder reads the record, and the elements of a row table, with `dict.get`: callers use
it only for a dict record, and a rows builder answers None for an element that is not a
dict. Each inline form answers what its general read answers, calling it for any case it
does not write out. It does not say which column a step refused: on any exception the
caller fills the table again column by column, which raises the error it always raised.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from syncd.mapping.transforms import Env, Inline

RecordBuilder = Callable[[dict[str, Any], Env], dict[str, Any]]
RowsBuilder = Callable[[dict[str, Any], Sequence[Any], Env], "list[dict[str, Any]] | None"]


class Read(NamedTuple):
    """How a builder reads one path; `get(env)` is the general read, exact for any value."""

    how: str  # "key": keys[0] of the record or row; "keys": keys[0] then keys[1]; "ref":
    # keys[0] of the record `target` names; "ref_id": the id the reference keys[0] holds;
    # "get": `get(env)`
    keys: tuple[str, ...]
    get: Callable[[Env], Any]
    row: bool = False  # reads the current row (`e`), not the record (`d`)
    target: Callable[[Env], Any] | None = None  # "ref": the referred record or None


class Layout(NamedTuple):
    """A template: `%` text with one `%s` per read, each read written as `text` writes it."""

    layout: str
    reads: tuple[Read, ...]
    text: Callable[[Any], str]  # a read that is not a str, as the template shows it


class KeySum(NamedTuple):
    """`sum` of `list[].key`: zero for an empty list inline, else `total(elements, env)`."""

    list_key: str
    row: bool  # the list is the current row's, not the record's
    total: Callable[[Any, Env], Any]  # the sum for any value read at `list_key`
    zero: Any


class Spec(NamedTuple):
    """What a builder needs of one column."""

    name: str
    kind: str  # "read": `source` is a Read; "value": the constant itself; "template": a
    # Layout; "sum": a KeySum (the chain's `sum` step included)
    source: Any
    steps: tuple[Callable[[Any, Env], Any], ...]  # the chain's `apply`s, in order
    reads_row: bool  # computed per row; otherwise once per record, shared by its rows
    inlines: tuple[Inline | None, ...] = ()  # per step, how to write its usual case inline


class _Code:
    """What the expressions of one builder need: closure cells, lookups before the rows."""

    def __init__(self) -> None:
        self.cells: dict[str, Any] = {}
        self.targets: dict[Any, str] = {}  # a reference's `target` -> the variable holding it
        self.first: list[str] = []  # statements before anything else
        self.reads_e = False  # some expression reads the row `e` with `dict.get`

    def cell(self, name: str, value: Any) -> str:
        if name in self.cells:
            raise ValueError(f"row builder name {name!r} used twice")
        self.cells[name] = value
        return name


def record_builder(specs: Sequence[Spec]) -> RecordBuilder:
    """`build(data, env)`: the one row of a table without `rows`."""
    code = _Code()
    items = ", ".join(f"n{i}: {_expr(i, spec, code)}" for i, spec in enumerate(specs))
    body = ["def build(d, env):", *code.first, f"    return {{{items}}}"]
    builder: RecordBuilder = _define(body, code.cells)
    return builder


def rows_builder(specs: Sequence[Spec]) -> RowsBuilder:
    """`build(data, elements, env)`: a row per element, or None if an element is not a dict.

    Columns that do not read the row are computed once, before the first row.
    """
    code = _Code()
    shared, items = [], []
    for i, spec in enumerate(specs):
        expr = _expr(i, spec, code)
        if spec.reads_row:
            items.append(f"n{i}: {expr}")
        else:
            shared.append(f"    r{i} = {expr}")
            items.append(f"n{i}: r{i}")
    body = [
        "def build(d, elements, env):",
        *code.first,
        *shared,
        "    rows = []",
        "    append = rows.append",
        "    for e in elements:",
        *(["        if type(e) is not dict:", "            return None"] if code.reads_e else []),
        "        env.row = e",
        f"        append({{{', '.join(items)}}})",
        "    return rows",
    ]
    builder: RowsBuilder = _define(body, code.cells)
    return builder


def _expr(i: int, spec: Spec, code: _Code) -> str:
    """Column `i`'s value as an expression of `d` (record), `e` (row) and `env`."""
    code.cell(f"n{i}", spec.name)
    if spec.kind == "read":
        text = _read(spec.source, f"{i}", code)
    elif spec.kind == "value":
        text = code.cell(f"c{i}", spec.source)
    elif spec.kind == "template":
        text = _template(spec.source, i, code)
    elif spec.kind == "sum":
        text = _sum(spec.source, i, code)
    else:
        raise ValueError(f"unknown column kind {spec.kind!r}")
    for j, step in enumerate(spec.steps):
        code.cell(f"s{i}_{j}", step)
        inline = spec.inlines[j] if j < len(spec.inlines) else None
        if inline is None:
            text = f"s{i}_{j}({text}, env)"
            continue
        names = {name: code.cell(f"{name}{i}_{j}", value) for name, value in inline.cells.items()}
        text = (
            "("
            + inline.expr.format(input=text, v=f"v{i}_{j}", t=f"t{i}_{j}", apply=f"s{i}_{j}", **names)
            + ")"
        )
    return text


def _read(read: Read, at: str, code: _Code) -> str:
    """A read as an expression; `at` makes its names (`k3`, `pk3_1`) its own."""
    holder = "e" if read.row else "d"
    code.reads_e |= read.row and read.how in ("key", "keys")
    prefix = "k" if "_" not in at else "pk"  # (a column's own read keeps its old names)
    if read.how == "key":
        return f"{holder}.get({code.cell(f'{prefix}{at}', read.keys[0])})"
    getter = code.cell(f"g{at}" if prefix == "k" else f"pg{at}", read.get)
    if read.how == "keys":
        first, second = code.cell(f"{prefix}{at}", read.keys[0]), code.cell(f"{prefix}{at}b", read.keys[1])
        return f"(u{at}.get({second}) if type(u{at} := {holder}.get({first})) is dict else {getter}(env))"
    if read.how == "ref_id":
        key = code.cell(f"{prefix}{at}", read.keys[0])
        return f"(u{at} if type(u{at} := d.get({key})) is int or type(u{at}) is str else {getter}(env))"
    if read.how == "ref":
        if read.target not in code.targets:
            n = len(code.targets)
            code.targets[read.target] = f"a{n}"
            code.first.append(f"    a{n} = {code.cell(f'ta{n}', read.target)}(env)")
        target, key = code.targets[read.target], code.cell(f"{prefix}{at}", read.keys[0])
        return f"(None if {target} is None else {target}.get({key}))"
    if read.how != "get":
        raise ValueError(f"unknown read {read.how!r}")
    return f"{getter}(env)"


def _template(template: Layout, i: int, code: _Code) -> str:
    text = code.cell(f"x{i}", template.text)
    parts = []
    for p, read in enumerate(template.reads):
        value = f"w{i}_{p}"
        parts.append(
            f"{value} if type({value} := {_read(read, f'{i}_{p}', code)}) is str else {text}({value})"
        )
    return f"({code.cell(f'l{i}', template.layout)} % ({''.join(f'{part}, ' for part in parts)}))"


def _sum(total: KeySum, i: int, code: _Code) -> str:
    holder = "e" if total.row else "d"
    code.reads_e |= total.row
    key, zero, add = (
        code.cell(f"k{i}", total.list_key),
        code.cell(f"z{i}", total.zero),
        code.cell(f"g{i}", total.total),
    )
    return f"({zero} if type(u{i} := {holder}.get({key})) is list and not u{i} else {add}(u{i}, env))"


def _define(body: list[str], cells: Mapping[str, Any]) -> Any:
    """Run `def factory(<cells>): <body>; return build` and call it with the cells."""
    lines = [f"def factory({', '.join(cells)}):", *(f"    {line}" for line in body), "    return build"]
    scope: dict[str, Any] = {}
    code = compile("\n".join(lines), "<syncd mapping row builder>", "exec")
    builtins = {"type": type, "dict": dict, "int": int, "str": str, "list": list}
    exec(code, {"__builtins__": builtins}, scope)  # noqa: S102 - fixed fragments only
    return scope["factory"](**cells)
