"""A compiled mapping: tables of columns, conditions and templates, and `apply`.

`syncd.mapping.loader` builds a `MappingSet` from a file; here is what it runs: each
path, column, template and condition compiled once into a closure, and each table's
columns into one row builder (`syncd.mapping.rowcode`), so that `apply` turns one raw
record into rows with no interpretation left to do.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import simplejson

from syncd.errors import MappingError
from syncd.mapping.rowcode import KeySum, Layout, Read, Spec, record_builder, rows_builder
from syncd.mapping.schema import (
    CompiledPath,
    Resolve,
    Step,
)
from syncd.mapping.transforms import (
    ApplyError,
    Defaults,
    Env,
    Transform,
    key_total,
    path_getter,
    reference_target,
    to_decimal,
    to_text,
)
from syncd.plugin import Record

# Bump when the meaning of an unchanged file changes, so every connector re-delivers.
LANGUAGE_VERSION = 1


TOP_KEYS = ("defaults", "tables", "streams", "values")
TABLE_KEYS = ("stream", "rows", "skip", "description", "fields")
FIELD_KEYS = ("name", "from", "value", "template", "transforms", "description", "write")
# How a connector that can read its target writes a column: always (the source owns the
# value, an empty one clears it) or only into an empty target value (HubSpot).
WRITE_MODES = ("always", "if_empty")
DEFAULT_KEYS = ("timezone", "rounding", "date_format", "datetime_format", "currency_digits")
STREAM_KEYS = ("skip",)
OPERATORS = ("equals", "not_equals", "in", "not_in")


# -- the compiled model ------------------------------------------------------------------


@dataclass(frozen=True)
class Template:
    """A template: literal text and paths, in order."""

    parts: tuple[str | CompiledPath, ...]
    # `render(env)`, compiled once: the text with each path's value (missing: empty)
    render: Callable[[Env], str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "render", _compile_template(self.parts))


def _template_text(value: Any) -> str:
    text = to_text(value)
    return "" if text is None else str(text)


def _layout(parts: tuple[str | CompiledPath, ...]) -> str:
    """The template as `%` text: its literal text escaped, `%s` for each path."""
    return "".join(p.replace("%", "%%") if isinstance(p, str) else "%s" for p in parts)


def _compile_template(parts: tuple[str | CompiledPath, ...]) -> Callable[[Env], str]:
    pieces = tuple(part if isinstance(part, str) else path_getter(part) for part in parts)
    getters = [p for p in pieces if not isinstance(p, str)]
    # one or two placeholders (most templates): `%` formatting of the literal text, escaped
    layout = _layout(parts)
    if len(getters) == 1:
        (one,) = getters

        def render_one(env: Env) -> str:
            a = one(env)
            return layout % (a if type(a) is str else _template_text(a),)

        return render_one
    paths = [p for p in parts if isinstance(p, CompiledPath)]
    if len(getters) == 2 and all(p.key is not None and not p.relative for p in paths):
        first, second = getters
        one_key, other_key = paths[0].key, paths[1].key

        def render_two_keys(env: Env) -> str:  # "{name} ({number})": two keys of the record
            data = env.record
            if type(data) is dict:
                a, b = data.get(one_key), data.get(other_key)
            else:
                a, b = first(env), second(env)
            return layout % (
                a if type(a) is str else _template_text(a),
                b if type(b) is str else _template_text(b),
            )

        return render_two_keys
    if len(getters) == 2:
        first, second = getters

        def render_two(env: Env) -> str:
            a, b = first(env), second(env)
            return layout % (
                a if type(a) is str else _template_text(a),
                b if type(b) is str else _template_text(b),
            )

        return render_two

    def render(env: Env) -> str:
        out = []
        for piece in pieces:
            if type(piece) is str:
                out.append(piece)
            else:
                value = piece(env)  # type: ignore[operator]
                if type(value) is not str:
                    value = to_text(value)
                    value = "" if value is None else str(value)
                out.append(value)
        return "".join(out)

    return render


@dataclass(frozen=True)
class Constant:
    """A constant source: `value = ...`."""

    value: Any


@dataclass(frozen=True)
class Column:
    """One output column: a source (path, constant or template) and its transform chain."""

    name: str
    source: CompiledPath | Template | Constant
    steps: tuple[Transform, ...]
    line: int | None
    description: str = ""
    write: str = "always"  # one of WRITE_MODES
    # `value` compiled once: the source read and the chain as one closure
    compute: Callable[[Env], Any] = field(init=False, repr=False, compare=False)
    # whether the value depends on the current row; if not, every row of a record shares it
    reads_row: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "compute", _compile_column(self.source, self.steps))
        source = self.source
        if isinstance(source, CompiledPath):
            reads_row = source.relative
        elif isinstance(source, Template):
            reads_row = any(isinstance(p, CompiledPath) and p.relative for p in source.parts)
        else:
            reads_row = False
        object.__setattr__(self, "reads_row", reads_row or any(s.reads_row for s in self.steps))

    @property
    def kind(self) -> str:
        """`from`, `template` or `value`: which key of the file gave the source."""
        if isinstance(self.source, CompiledPath):
            return "from"
        return "template" if isinstance(self.source, Template) else "value"

    def describe(self) -> str:
        """The source and chain as a user wrote them, e.g. `date | date`."""
        if isinstance(self.source, CompiledPath):
            text = self.source.text
        elif isinstance(self.source, Template):
            text = "template"
        else:
            text = f"= {show_value(self.source.value)}"
        return " | ".join([text, *(s.name for s in self.steps)])

    def source_value(self, env: Env) -> Any:
        """The value before any transform."""
        if isinstance(self.source, CompiledPath):
            return env.read(self.source)
        if isinstance(self.source, Template):
            return self.source.render(env)
        return self.source.value

    def value(self, env: Env) -> Any:
        """The value after the transform chain."""
        return self.compute(env)


def _compile_column(
    source: CompiledPath | Template | Constant, steps: tuple[Transform, ...]
) -> Callable[[Env], Any]:
    """`Column.value` as one closure: no per-call dispatch on the source kind or chain length.

    A key of the record or of the row (most columns) is read inline, saving a call.
    """
    applies = tuple(step.apply for step in steps)
    if isinstance(source, Template):
        get: Callable[[Env], Any] = source.render
    elif isinstance(source, Constant):
        constant = source.value
        if not applies:
            return lambda env: constant
        get = lambda env: constant  # noqa: E731
    else:
        get = path_getter(source)
        key = source.key
        if key is not None and len(applies) == 1:
            read, (first,) = source.reader, applies
            if source.relative:
                return lambda env: first(
                    row.get(key) if type(row := env.row) is dict else read(row, env.resolve), env
                )
            return lambda env: first(
                data.get(key) if type(data := env.record) is dict else read(data, env.resolve), env
            )
    if not applies:
        return get
    if len(applies) == 1:
        (first,) = applies
        return lambda env: first(get(env), env)
    if len(applies) == 2:
        first, second = applies
        return lambda env: second(first(get(env), env), env)

    def chain(env: Env) -> Any:
        value = get(env)
        for apply in applies:
            value = apply(value, env)
        return value

    return chain


@dataclass(frozen=True)
class Condition:
    """A skip condition: `path OP operand`."""

    path: CompiledPath
    op: str
    operand: Any
    # `matches(env)`, compiled once for the operator and the operand's type
    test: Callable[[Env], bool] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "test", _compile_condition(self.path, self.op, self.operand))

    def matches(self, env: Env) -> bool:
        """Whether the condition holds (so the record or row is skipped)."""
        return self.test(env)

    def describe(self) -> str:
        return f"{self.path.text} {self.op} {show_value(self.operand)}"


def _spec(column: Column) -> Spec:
    source = column.source
    steps = tuple(step.apply for step in column.steps)
    inlines = tuple(step.inline for step in column.steps)
    if isinstance(source, Constant):
        return Spec(column.name, "value", source.value, steps, column.reads_row, inlines)
    if isinstance(source, Template):
        reads = tuple(_read(p) for p in source.parts if isinstance(p, CompiledPath))
        layout = Layout(_layout(source.parts), reads, _template_text)
        return Spec(column.name, "template", layout, steps, column.reads_row, inlines)
    total = _key_sum(source, column.steps)
    if total is not None:
        return Spec(column.name, "sum", total, steps[1:], column.reads_row, inlines[1:])
    return Spec(column.name, "read", _read(source), steps, column.reads_row, inlines)


def _read(path: CompiledPath) -> Read:
    """How a row builder reads a path: the kinds it writes inline, else its getter."""
    get = path_getter(path)
    steps = path.steps
    if path.key is not None:
        return Read("key", (path.key,), get, path.relative)
    if len(steps) == 2 and all(s.ref is None and not s.many for s in steps):
        return Read("keys", (steps[0].key, steps[1].key), get, path.relative)
    if path.relative or not steps or steps[0].ref is None or len(steps) > 2:
        return Read("get", (), get, path.relative)
    field_name, stream = steps[0].key, steps[0].ref
    if len(steps) == 1 or (_plain(steps[1]) and steps[1].key == "id"):
        return Read("ref_id", (field_name,), get)
    if _plain(steps[1]):  # (as `path_getter` reads it: once per record, shared)
        return Read("ref", (steps[1].key,), get, target=reference_target(field_name, stream))
    return Read("get", (), get)


def _plain(step: Step) -> bool:
    return step.ref is None and not step.many


def _key_sum(path: CompiledPath, steps: tuple[Transform, ...]) -> KeySum | None:
    """`list[].key | sum ...` (discounts, taxes): summed by the builder, the list read inline."""
    parts = path.steps
    if not (steps and steps[0].name == "sum" and len(parts) == 2):
        return None
    if not (parts[0].many and parts[0].ref is None and _plain(parts[1])):
        return None
    get, add = path_getter(path), steps[0].apply
    total = key_total(parts[1].key, lambda env: add(get(env), env))
    return KeySum(parts[0].key, path.relative, total, Decimal(0))  # (what `sum` gives for [])


def _rows_reader(path: CompiledPath) -> Callable[[Env], Any]:
    read = path.reader  # read once per record: nothing to memoise
    return lambda env: read(env.record, env.resolve)


@dataclass(frozen=True)
class OutputTable:
    """One `[tables.NAME]`: stream, optional row list, filters and columns."""

    name: str
    stream: str
    rows: CompiledPath | None
    skip: tuple[Condition, ...]
    row_skip: tuple[Condition, ...]
    columns: tuple[Column, ...]
    expands: frozenset[str]
    description: str = ""
    # reads the `rows` list (None without rows)
    read_rows: Callable[[Env], Any] | None = field(init=False, repr=False, compare=False)
    # How `MappingSet.apply` fills a dict record's rows: `record_builder` without rows,
    # `rows_builder` with them (see syncd.mapping.rowcode).
    build: Any = field(init=False, repr=False, compare=False)
    # `rows` as one key of the record (`items`): `apply` reads a dict record's list inline
    rows_key: str | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        specs = [_spec(c) for c in self.columns]
        if self.rows is None:
            object.__setattr__(self, "read_rows", None)
            object.__setattr__(self, "build", record_builder(specs))
        else:
            object.__setattr__(self, "read_rows", _rows_reader(self.rows))
            object.__setattr__(self, "build", rows_builder(specs))
            steps = self.rows.steps
            if len(steps) == 1 and steps[0].ref is None:
                object.__setattr__(self, "rows_key", steps[0].key)

    def skipped_by(self, env: Env) -> Condition | None:
        """The first record-level condition that skips this record, if any."""
        return next((c for c in self.skip if c.matches(env)), None)

    def envs(
        self, data: Mapping[str, Any], resolve: Resolve, memo: dict[str, Any] | None = None
    ) -> list[Env]:
        """One environment per output row (per list element for a line-level table).

        Environments given the same `memo` (one per record) share what paths through a
        reference or a list read.
        """
        record_env = Env(data, None, resolve, memo)
        if self.skip and self.skipped_by(record_env):
            return []
        if self.rows is None:
            return [record_env]
        elements = record_env.read(self.rows) or []
        envs = [Env(data, element, resolve, memo) for element in elements]
        if not self.row_skip:
            return envs
        return [e for e in envs if not any(c.matches(e) for c in self.row_skip)]


class MappingSet:
    """A checked mapping file, compiled: which tables, which columns, and how to fill them."""

    def __init__(self, path: Path, tables: Sequence[OutputTable], defaults: Defaults, canonical: Any) -> None:
        self.path = path
        self.tables: dict[str, OutputTable] = {t.name: t for t in tables}
        self.defaults = defaults
        self._streams = {
            stream: _StreamPlan.of([t for t in self.tables.values() if t.stream == stream])
            for stream in {t.stream for t in tables}
        }
        payload = simplejson.dumps([LANGUAGE_VERSION, canonical], sort_keys=True, use_decimal=True)
        self.fingerprint: str = hashlib.sha256(payload.encode("utf-8")).hexdigest()

    def __repr__(self) -> str:
        return (
            f"MappingSet({str(self.path)!r}, tables={list(self.tables)}, fingerprint={self.fingerprint[:12]})"
        )

    def tables_for(self, stream: str) -> list[str]:
        """Output tables fed by a stream, in file order."""
        return [t.name for t in self.tables.values() if t.stream == stream]

    def expands(self, stream: str) -> set[str]:
        """References to ask the API to expand for a stream (e.g. {"customer"})."""
        out: set[str] = set()
        for table in self.tables.values():
            if table.stream == stream:
                out |= table.expands
        return out

    def columns(self) -> dict[str, list[str]]:
        """Output column names per table, in file order."""
        return {t.name: [c.name for c in t.columns] for t in self.tables.values()}

    def fill_only(self) -> dict[str, list[str]]:
        """Per table, the columns declared `write = "if_empty"` (tables without any left out)."""
        out = {t.name: [c.name for c in t.columns if c.write == "if_empty"] for t in self.tables.values()}
        return {name: cols for name, cols in out.items() if cols}

    def apply(self, record: Record, resolve: Resolve) -> dict[str, list[dict[str, Any]]]:
        """Rows for every table fed by the record's stream ([] where a filter skips it).

        Raises MappingError naming the table, column and file line when a value cannot be
        transformed (e.g. a value table without fallback has no entry for it).
        """
        plan = self._streams.get(record.stream)
        if plan is None:
            return {}
        if plan.looks_up:  # only paths through a reference call resolve: remember what it said
            found: dict[tuple[str, str], Mapping[str, Any] | None] = {}

            def lookup(ref_stream: str, rid: str) -> Mapping[str, Any] | None:
                key = (ref_stream, rid)
                if key in found:
                    return found[key]
                got = found[key] = resolve(ref_stream, rid)
                return got

            env = Env(record.data, None, lookup, {})
        else:
            env = Env(record.data, None, resolve, {})
        out: dict[str, list[dict[str, Any]]] = {}
        for condition in plan.common:
            if condition.test(env):
                for table, _ in plan.tables:
                    out[table.name] = []
                return out
        data = env.record
        direct = type(data) is dict  # the row builders read it with `dict.get`
        for table, own_skip in plan.tables:
            env.row = None
            if own_skip and any(c.test(env) for c in own_skip):
                out[table.name] = []
                continue
            rows: list[dict[str, Any]] | None = None
            elements = None
            if table.read_rows is None:
                if direct:
                    try:
                        rows = [table.build(data, env)]
                    except Exception:
                        rows = None  # the general path below raises it again, naming the column
            else:
                key = table.rows_key
                if key is None or not direct or type(elements := data.get(key)) is not list:
                    elements = table.read_rows(env)  # (a copy of the list, or [] for no list)
                if elements and table.row_skip:
                    elements = self._kept(table, env, elements)
                if not elements:
                    rows = []
                elif direct:
                    try:
                        rows = table.build(data, elements, env)  # None: an element is not a dict
                    except Exception:
                        rows = None  # as above
            out[table.name] = self._general(table, record, env, elements) if rows is None else rows
        return out

    @staticmethod
    def _kept(table: OutputTable, env: Env, elements: Any) -> list[Any]:
        """The elements no row condition skips."""
        kept = []
        for element in elements:
            env.row = element
            if not any(c.test(env) for c in table.row_skip):
                kept.append(element)
        return kept

    def _general(self, table: OutputTable, record: Record, env: Env, elements: Any) -> list[dict[str, Any]]:
        """A table's rows column by column (`elements` None: the record's one row).

        For a record or element that is not a dict, and to name the column whose step
        refused a value: the first such column of the first row where one does.
        """
        rows = []
        for element in [None] if elements is None else elements:
            env.row = element
            row: dict[str, Any] = {}
            for column in table.columns:
                try:
                    row[column.name] = column.compute(env)
                except (ApplyError, ArithmeticError, ValueError, TypeError) as exc:
                    raise self._error(record, table, column, exc) from None
            rows.append(row)
        return rows

    def _error(self, record: Record, table: OutputTable, column: Column, exc: Exception) -> MappingError:
        return MappingError(
            f"{record.stream} {record.id}: {table.name}.{column.name}: {exc}",
            file=str(self.path),
            line=column.line,
            field=f"tables.{table.name}.{column.name}",
        )


@dataclass(frozen=True)
class _StreamPlan:
    """How `apply` maps one stream's records: its tables in file order, filters first."""

    tables: tuple[tuple[OutputTable, tuple[Condition, ...]], ...]  # with filters not in `common`
    common: tuple[Condition, ...]  # filters every table starts with ([streams.X] skip): test once
    looks_up: bool  # some path reads through a reference (calls resolve)

    @classmethod
    def of(cls, tables: Sequence[OutputTable]) -> _StreamPlan:
        skips = [t.skip for t in tables]
        n = 0
        while all(len(s) > n and s[n] is skips[0][n] for s in skips):
            n += 1
        return cls(tuple((t, t.skip[n:]) for t in tables), skips[0][:n], any(t.expands for t in tables))


# -- comparing values in filters ----------------------------------------------------------


def _compile_condition(path: CompiledPath, op: str, operand: Any) -> Callable[[Env], bool]:
    """`_equal` against the operand(s), with the common cases decided without calls."""
    get = path_getter(path)
    if op in ("equals", "not_equals"):
        if isinstance(operand, bool):
            # _equal with a boolean operand is identity (None is neither True nor False)
            if op == "equals":
                return lambda env: get(env) is operand
            return lambda env: get(env) is not operand
        if type(operand) is str:
            text = operand

            def equal(value: Any) -> bool:
                return value == text if type(value) is str else _equal(value, text)

        else:

            def equal(value: Any) -> bool:
                return _equal(value, operand)

        if op == "equals":
            return lambda env: equal(get(env))
        return lambda env: not equal(get(env))
    operands = tuple(operand)
    texts = (
        frozenset(o for o in operands if type(o) is str) if all(type(o) is str for o in operands) else None
    )

    def hit(value: Any) -> bool:
        if texts is not None and type(value) is str:
            return value in texts
        return any(_equal(value, o) for o in operands)

    if op == "in":
        return lambda env: hit(get(env))
    return lambda env: not hit(get(env))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | Decimal) and not isinstance(value, bool)


def _equal(value: Any, operand: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, bool) or isinstance(operand, bool):
        return value is operand
    if _is_number(value) and _is_number(operand):
        return to_decimal(value) == to_decimal(operand)
    return bool(to_text(value) == to_text(operand))


def show_value(value: Any) -> str:
    """A value as an error message shows it (JSON, exact decimals)."""
    return simplejson.dumps(value, use_decimal=True, default=str, ensure_ascii=False)


# -- checking ------------------------------------------------------------------------------
