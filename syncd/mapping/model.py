"""Loading, checking and applying a mapping file.

`check_mapping` returns every problem of a file as a `MappingError` naming file, line,
column and field, with the nearest valid alternative; `load_mapping` raises them all at
once or returns a compiled `MappingSet` whose `apply` turns one raw record into rows.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import simplejson

from syncd.errors import MappingError
from syncd.mapping.locate import Locations, locate
from syncd.mapping.schema import (
    STREAM_NAMES,
    CompiledPath,
    PathError,
    Resolve,
    compile_path,
    compile_rows,
)
from syncd.mapping.transforms import (
    ApplyError,
    Defaults,
    Env,
    Transform,
    TransformError,
    check_rounding,
    compile_step,
    path_getter,
    to_decimal,
    to_text,
)
from syncd.plugin import Record, TableSpec

# Bump when the meaning of an unchanged file changes, so every connector re-delivers.
LANGUAGE_VERSION = 1

Loc = tuple[str | int, ...]

TOP_KEYS = ("defaults", "tables", "streams", "values")
TABLE_KEYS = ("stream", "rows", "skip", "description", "fields")
FIELD_KEYS = ("name", "from", "value", "template", "transforms", "description")
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


def _compile_template(parts: tuple[str | CompiledPath, ...]) -> Callable[[Env], str]:
    pieces = tuple(part if isinstance(part, str) else path_getter(part) for part in parts)
    getters = [p for p in pieces if not isinstance(p, str)]
    # one or two placeholders (most templates): `%` formatting of the literal text, escaped
    layout = "".join(p.replace("%", "%%") if isinstance(p, str) else "%s" for p in pieces)
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
            text = f"= {_show(self.source.value)}"
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
        return f"{self.path.text} {self.op} {_show(self.operand)}"


# (column name, compute, key, reads the row): with a key, the column copies that key of the
# record (or row) as is, which `apply` does inline when it is a dict
Plan = tuple[str, Callable[[Env], Any], str | None, bool]


def _plan(column: Column) -> Plan:
    source = column.source
    key = source.key if isinstance(source, CompiledPath) and not column.steps else None
    return (column.name, column.compute, key, column.reads_row)


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
    # How `MappingSet.apply` fills rows: a Plan per column, and per column that reads the
    # current row (the others are equal on every row of a record).
    plan: tuple[Plan, ...] = field(init=False, repr=False, compare=False)
    row_plan: tuple[Plan, ...] = field(init=False, repr=False, compare=False)
    # reads the `rows` list (None without rows)
    read_rows: Callable[[Env], Any] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "read_rows", _rows_reader(self.rows) if self.rows is not None else None)
        object.__setattr__(self, "plan", tuple(_plan(c) for c in self.columns))
        object.__setattr__(self, "row_plan", tuple(_plan(c) for c in self.columns if c.reads_row))

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
        for table, own_skip in plan.tables:
            env.row = None
            if own_skip and any(c.test(env) for c in own_skip):
                out[table.name] = []
            elif table.read_rows is None:
                row: dict[str, Any] = {}
                data = env.record
                direct = type(data) is dict
                for name, compute, key, _ in table.plan:  # a table without rows reads no row
                    if key is not None and direct:
                        row[name] = data.get(key)
                        continue
                    try:
                        row[name] = compute(env)
                    except (ApplyError, ArithmeticError, ValueError, TypeError) as exc:
                        raise self._error(record, table, name, exc) from None
                out[table.name] = [row]
            else:
                elements = table.read_rows(env)
                out[table.name] = self._rows(table, record, env, elements) if elements else []
        return out

    def _rows(self, table: OutputTable, record: Record, env: Env, elements: Any) -> list[dict[str, Any]]:
        """A line-level table's rows, as `envs` would give them; one Env reused for every row."""
        if table.row_skip:
            kept = []
            for element in elements:
                env.row = element
                if not any(c.test(env) for c in table.row_skip):
                    kept.append(element)
            elements = kept
        rows: list[dict[str, Any]] = []
        data = env.record
        for element in elements:
            env.row = element
            if rows:
                # columns that do not read the row have the first row's values: compute the rest
                row = rows[0].copy()
                plan = table.row_plan
            else:
                row = {}
                plan = table.plan
            rows.append(row)
            for name, compute, key, on_row in plan:
                if key is not None:
                    source = element if on_row else data
                    if type(source) is dict:
                        row[name] = source.get(key)
                        continue
                try:
                    row[name] = compute(env)
                except (ApplyError, ArithmeticError, ValueError, TypeError) as exc:
                    raise self._error(record, table, name, exc) from None
        return rows

    def _error(self, record: Record, table: OutputTable, name: str, exc: Exception) -> MappingError:
        column = next(c for c in table.columns if c.name == name)
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


def _show(value: Any) -> str:
    return simplejson.dumps(value, use_decimal=True, default=str, ensure_ascii=False)


# -- checking ------------------------------------------------------------------------------


def _dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


def _near(word: Any, options: Iterable[str]) -> str | None:
    found = difflib.get_close_matches(str(word), list(options), n=1, cutoff=0.6)
    return found[0] if found else None


@dataclass
class _Checker:
    file: Path
    locations: Locations
    specs: Mapping[str, TableSpec] | None
    errors: list[MappingError] = field(default_factory=list)

    def error(self, loc: Loc, message: str, suggestion: str | None = None, *, at_key: bool = False) -> None:
        pos = self.locations.key(loc) if at_key else self.locations.value(loc)
        line, column = pos if pos else (1, 1)
        text = f"{_dotted(loc)}: {message}" if loc else message
        if suggestion:
            text += f" (did you mean {suggestion!r}?)"
        self.errors.append(
            MappingError(text, file=str(self.file), line=line, column=column, field=_dotted(loc) or None)
        )

    def unknown_keys(self, loc: Loc, data: Mapping[str, Any], allowed: Sequence[str], what: str) -> None:
        for key in data:
            if key not in allowed:
                self.error(
                    (*loc, key),
                    f"unknown key {key!r} in {what}; allowed: {', '.join(allowed)}",
                    _near(key, allowed),
                    at_key=True,
                )

    def table_of(self, loc: Loc, value: Any, what: str) -> dict[str, Any]:
        if isinstance(value, dict):
            return value
        self.error(loc, f"{what} must be a table, got {_show(value)}")
        return {}

    # -- sections

    def defaults(self, raw: Any) -> Defaults:
        data = self.table_of(("defaults",), raw, "[defaults]")
        self.unknown_keys(("defaults",), data, DEFAULT_KEYS, "[defaults]")
        base = Defaults()
        values: dict[str, Any] = {}
        probe = Env({}, None, lambda s, i: None)
        if "timezone" in data:
            try:
                compile_step({"date": "%Y", "tz": data["timezone"]}, base, _no_paths, {})
                values["timezone"] = data["timezone"]
            except TransformError as exc:
                self.error(("defaults", "timezone"), str(exc), exc.suggestion)
        if "rounding" in data:
            try:
                values["rounding"] = check_rounding(data["rounding"])
            except TransformError as exc:
                self.error(("defaults", "rounding"), str(exc), exc.suggestion)
        for key, step in (("date_format", "date"), ("datetime_format", "datetime")):
            if key in data:
                try:
                    compile_step({step: data[key]}, base, _no_paths, {}).apply(0, probe)
                    values[key] = data[key]
                except TransformError as exc:
                    self.error(("defaults", key), str(exc))
        if "currency_digits" in data:
            digits = self.table_of(
                ("defaults", "currency_digits"), data["currency_digits"], "currency_digits"
            )
            good = {}
            for code, n in digits.items():
                if not re.fullmatch(r"[A-Za-z]{3}", code):
                    self.error(
                        ("defaults", "currency_digits", code), f"{code!r} is not a currency code", at_key=True
                    )
                elif isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= 8:
                    self.error(("defaults", "currency_digits", code), f"expects digits 0..8, got {_show(n)}")
                else:
                    good[code.upper()] = n
            values["currency_digits"] = good
        return Defaults(**values)

    def value_tables(self, raw: Any) -> dict[str, dict[str, Any]]:
        data = self.table_of(("values",), raw, "[values]")
        out = {}
        for name, table in data.items():
            entries = self.table_of(("values", name), table, f"[values.{name}]")
            for key, target in entries.items():
                if not isinstance(target, str | int | Decimal | bool):
                    self.error(
                        ("values", name, key),
                        f"a value table maps text to a text, number or boolean, got {_show(target)}",
                    )
            out[name] = entries
        return out

    def conditions(self, loc: Loc, raw: Any, paths: Callable[[str], CompiledPath]) -> list[Condition]:
        if not isinstance(raw, list):
            self.error(loc, 'skip must be a list of conditions such as [{ path = "draft", equals = true }]')
            return []
        out = []
        for i, item in enumerate(raw):
            here = (*loc, i)
            if not isinstance(item, dict):
                self.error(
                    here,
                    f'a condition is a table such as {{ path = "draft", equals = true }}, got {_show(item)}',
                )
                continue
            self.unknown_keys(here, item, ("path", *OPERATORS), "a condition")
            ops = [k for k in item if k in OPERATORS]
            if len(ops) != 1:
                self.error(here, f"a condition needs exactly one of {', '.join(OPERATORS)}")
                continue
            op, operand = ops[0], item[ops[0]]
            if "path" not in item:
                self.error(here, 'a condition needs a path, e.g. path = "status"')
                continue
            try:
                path = paths(item["path"])
            except PathError as exc:
                self.error((*here, "path"), str(exc), exc.suggestion)
                continue
            scalar = (str, int, Decimal, bool)
            if op in ("in", "not_in"):
                if not isinstance(operand, list) or not all(isinstance(o, scalar) for o in operand):
                    self.error(
                        (*here, op),
                        f"{op} expects a list of texts, numbers or booleans, got {_show(operand)}",
                    )
                    continue
            elif not isinstance(operand, scalar):
                self.error((*here, op), f"{op} expects a text, number or boolean, got {_show(operand)}")
                continue
            out.append(Condition(path, op, operand))
        return out

    def template(self, loc: Loc, text: Any, paths: Callable[[str], CompiledPath]) -> Template | None:
        if not isinstance(text, str):
            self.error(
                loc, f'template must be text such as "{{number}} – {{customer.name}}", got {_show(text)}'
            )
            return None
        parts: list[str | CompiledPath] = []
        literal, i, ok = "", 0, True
        while i < len(text):
            ch = text[i]
            if text.startswith("{{", i) or text.startswith("}}", i):
                literal += ch
                i += 2
            elif ch == "{":
                end = text.find("}", i)
                if end < 0:
                    self.error(
                        loc,
                        f"template has an unclosed '{{' at character {i + 1}; write '{{{{' for a literal brace",
                    )
                    return None
                name = text[i + 1 : end].strip()
                try:
                    path = paths(name)
                except PathError as exc:
                    self.error(loc, f"template placeholder {{{name}}}: {exc}", exc.suggestion)
                    ok = False
                else:
                    if path.is_list:
                        self.error(
                            loc, f"template placeholder {{{name}}} is a list; use a column with join instead"
                        )
                        ok = False
                    if literal:
                        parts.append(literal)
                        literal = ""
                    parts.append(path)
                i = end + 1
            elif ch == "}":
                self.error(
                    loc, f"template has a lone '}}' at character {i + 1}; write '}}}}' for a literal brace"
                )
                return None
            else:
                literal += ch
                i += 1
        if literal:
            parts.append(literal)
        return Template(tuple(parts)) if ok else None

    def table(
        self,
        name: str,
        raw: Any,
        defaults: Defaults,
        values: Mapping[str, Mapping[str, Any]],
        stream_skips: Mapping[str, list[Condition]],
    ) -> OutputTable | None:
        loc: Loc = ("tables", name)
        data = self.table_of(loc, raw, f"[tables.{name}]")
        self.unknown_keys(loc, data, TABLE_KEYS, f"[tables.{name}]")
        stream = data.get("stream")
        if stream is None:
            self.error(loc, f'missing stream = "..." ({", ".join(STREAM_NAMES)})', at_key=True)
            return None
        if stream not in STREAM_NAMES:
            self.error(
                (*loc, "stream"),
                f"unknown stream {stream!r}; streams: {', '.join(STREAM_NAMES)}",
                _near(stream, STREAM_NAMES),
            )
            return None
        rows_text = data.get("rows")
        rows = None
        if rows_text is not None:
            try:
                if not isinstance(rows_text, str):
                    raise PathError(
                        f'rows must be the text path of a list such as "items", got {_show(rows_text)}'
                    )
                rows = compile_rows(stream, rows_text)
            except PathError as exc:
                self.error((*loc, "rows"), str(exc), exc.suggestion)
                return None
        expands: set[str] = set()

        def paths(text: str) -> CompiledPath:
            path = compile_path(stream, text, row=rows_text if rows is not None else None)
            expands.update(path.expands)
            return path

        skip = list(stream_skips.get(stream, []))
        row_skip: list[Condition] = []
        if "skip" in data:
            for cond in self.conditions((*loc, "skip"), data["skip"], paths):
                (row_skip if cond.path.relative else skip).append(cond)
        for cond in skip:
            expands.update(cond.path.expands)
        columns = self.columns(loc, data, stream, defaults, values, paths, rows_text)
        if self.specs is not None:
            self.spec(loc, name, stream, columns)
        description = data.get("description", "")
        if not isinstance(description, str):
            self.error((*loc, "description"), "description must be text")
        return OutputTable(
            name,
            stream,
            rows,
            tuple(skip),
            tuple(row_skip),
            tuple(columns),
            frozenset(expands),
            description if isinstance(description, str) else "",
        )

    def columns(
        self,
        loc: Loc,
        data: Mapping[str, Any],
        stream: str,
        defaults: Defaults,
        values: Mapping[str, Mapping[str, Any]],
        paths: Callable[[str], CompiledPath],
        rows_text: Any,
    ) -> list[Column]:
        fields = data.get("fields")
        if fields is None:
            self.error(
                loc,
                f"no columns: add [[{_dotted((*loc, 'fields'))}]] sections with name and from",
                at_key=True,
            )
            return []
        if not isinstance(fields, list) or not fields:
            self.error((*loc, "fields"), "fields must be a non-empty list of columns")
            return []
        seen: dict[str, int | None] = {}
        columns = []
        for i, raw in enumerate(fields):
            here = (*loc, "fields", i)
            if not isinstance(raw, dict):
                self.error(here, f"a column is a table with name and from, got {_show(raw)}")
                continue
            self.unknown_keys(here, raw, FIELD_KEYS, "a column")
            name = raw.get("name")
            if not isinstance(name, str) or not name.strip():
                self.error(
                    here if "name" not in raw else (*here, "name"),
                    'a column needs a name = "..." (non-empty text)',
                    at_key="name" not in raw,
                )
                continue
            pos = self.locations.value((*here, "name"))
            if name in seen:
                first = seen[name]
                self.error(
                    (*here, "name"),
                    f"duplicate column {name!r}" + (f" (first at line {first})" if first else ""),
                )
                continue
            seen[name] = pos[0] if pos else None
            column = self.column(here, raw, name, defaults, values, paths, rows_text)
            if column is not None:
                columns.append(column)
        return columns

    def column(
        self,
        here: Loc,
        raw: Mapping[str, Any],
        name: str,
        defaults: Defaults,
        values: Mapping[str, Mapping[str, Any]],
        paths: Callable[[str], CompiledPath],
        rows_text: Any,
    ) -> Column | None:
        given = [k for k in ("from", "value", "template") if k in raw]
        if len(given) != 1:
            what = "no source" if not given else f"both {' and '.join(given)}"
            self.error(
                here, f"column {name!r} has {what}: give exactly one of from, value, template", at_key=True
            )
            return None
        kind = given[0]
        source: Any = raw[kind]
        is_list = False
        if kind == "from":
            if not isinstance(source, str):
                self.error((*here, "from"), f'from expects a path such as "number", got {_show(source)}')
                return None
            try:
                source = paths(source)
            except PathError as exc:
                self.error((*here, "from"), str(exc), exc.suggestion)
                return None
            is_list = source.is_list
        elif kind == "template":
            source = self.template((*here, "template"), source, paths)
            if source is None:
                return None
        elif not isinstance(source, str | int | Decimal | bool):
            self.error((*here, "value"), f"value expects a text, number or boolean, got {_show(source)}")
            return None
        steps: list[Transform] = []
        chain = raw.get("transforms", [])
        if not isinstance(chain, list):
            self.error(
                (*here, "transforms"), 'transforms must be a list such as ["strip", { truncate = 40 }]'
            )
            return None
        ok = True
        for j, step_raw in enumerate(chain):
            step_loc = (*here, "transforms", j)
            try:
                step = compile_step(step_raw, defaults, paths, values)
            except TransformError as exc:
                self.error((*step_loc, *exc.where), str(exc), exc.suggestion, at_key=bool(exc.where))
                ok = False
                continue
            if is_list and not step.takes_list:
                self.error(
                    step_loc,
                    f"{step.name} needs a single value but {source.text!r} is a list: put join or sum before it",
                    "sum" if step.name in ("money", "decimal") else "join",
                )
                ok = False
            if step.name in ("join", "sum"):
                is_list = False
            steps.append(step)
        if ok and is_list:
            hint = (
                f"; or set rows = {source.text.split('[]')[0]!r} on the table for one row per element"
                if rows_text is None
                else ""
            )
            self.error(
                (*here, "from"), f"{source.text!r} is a list: add a join or sum transform{hint}", "join"
            )
            ok = False
        description = raw.get("description", "")
        pos = self.locations.key(here)
        if not ok:
            return None
        wrapped = source if kind != "value" else Constant(source)
        return Column(name, wrapped, tuple(steps), pos[0] if pos else None, str(description))

    def spec(self, loc: Loc, name: str, stream: str, columns: Sequence[Column]) -> None:
        assert self.specs is not None
        spec = self.specs.get(name)
        if spec is None:
            self.error(
                loc,
                f"the connector has no table {name!r}; its tables: {', '.join(self.specs) or 'none'}",
                _near(name, self.specs),
                at_key=True,
            )
            return
        if spec.stream != stream:
            self.error((*loc, "stream"), f"table {name!r} must be fed by stream {spec.stream!r}")
        present = {c.name for c in columns}
        for required in sorted(spec.required - present):
            self.error(loc, f"missing column {required!r} required by the connector", at_key=True)


def _no_paths(text: str) -> CompiledPath:
    raise PathError("no paths here")


_TOML_POS = re.compile(r"\(at line (\d+), column (\d+)\)")


def _compile(
    path: Path, tables: Mapping[str, TableSpec] | None
) -> tuple[MappingSet | None, list[MappingError]]:
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        return None, [MappingError(f"cannot read the mapping file: {exc.strerror}", file=file)]
    except UnicodeDecodeError:
        return None, [MappingError("the mapping file is not UTF-8 text", file=file)]
    try:
        data = tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        m = _TOML_POS.search(str(exc))
        message = _TOML_POS.sub("", str(exc)).replace("(at end of document)", "").strip()
        if m:
            line, column = int(m.group(1)), int(m.group(2))
        else:  # "at end of document": an unclosed string, array or table reaches the end
            last = text.split("\n")
            line, column = len(last), len(last[-1]) + 1
            message += " at the end of the file (an unclosed quote, bracket or brace above?)"
        return None, [MappingError(f"not valid TOML: {message}", file=file, line=line, column=column)]
    checker = _Checker(path, locate(text), tables)
    checker.unknown_keys((), data, TOP_KEYS, "a mapping file")
    defaults = checker.defaults(data.get("defaults", {}))
    values = checker.value_tables(data.get("values", {}))
    stream_skips: dict[str, list[Condition]] = {}
    streams_raw = checker.table_of(("streams",), data.get("streams", {}), "[streams]")
    for stream, section in streams_raw.items():
        loc: Loc = ("streams", stream)
        if stream not in STREAM_NAMES:
            checker.error(
                loc,
                f"unknown stream {stream!r}; streams: {', '.join(STREAM_NAMES)}",
                _near(stream, STREAM_NAMES),
                at_key=True,
            )
            continue
        body = checker.table_of(loc, section, f"[streams.{stream}]")
        checker.unknown_keys(loc, body, STREAM_KEYS, f"[streams.{stream}]")
        if "skip" in body:
            stream_skips[stream] = checker.conditions(
                (*loc, "skip"), body["skip"], functools.partial(compile_path, stream)
            )
    tables_raw = checker.table_of(("tables",), data.get("tables", {}), "[tables]")
    if not tables_raw and "tables" not in data:
        checker.error((), "no [tables.NAME] section: a mapping needs at least one output table")
    compiled = []
    for name, raw in tables_raw.items():
        table = checker.table(name, raw, defaults, values, stream_skips)
        if table is not None:
            compiled.append(table)
    if tables is not None:
        for name, spec in tables.items():
            if name not in tables_raw and spec.required:
                checker.error(
                    ("tables",),
                    f"missing table [tables.{name}] (stream {spec.stream!r}, columns "
                    f"{', '.join(sorted(spec.required))}) required by the connector",
                    at_key=True,
                )
    if checker.errors:
        checker.errors.sort(key=lambda e: (e.line or 0, e.column or 0))
        return None, checker.errors
    return MappingSet(path, compiled, defaults, _canonical(compiled)), []


def _canonical(tables: Sequence[OutputTable]) -> Any:
    """What the output depends on: not comments, layout, quoting, key order or table order."""
    out = []
    for t in sorted(tables, key=lambda t: t.name):
        out.append(
            {
                "name": t.name,
                "stream": t.stream,
                "rows": t.rows.text.removesuffix("[]") if t.rows else None,
                "skip": sorted(c.describe() for c in t.skip),
                "row_skip": sorted(c.describe() for c in t.row_skip),
                "columns": [
                    [c.name, c.kind, _source_key(c), [list(s.canonical) for s in c.steps]] for c in t.columns
                ],
            }
        )
    return out


def _source_key(column: Column) -> Any:
    source = column.source
    if isinstance(source, CompiledPath):
        return source.text
    if isinstance(source, Template):
        return [p if isinstance(p, str) else {"path": p.text} for p in source.parts]
    return _show(source.value)


def check_mapping(path: Path, tables: Mapping[str, TableSpec] | None = None) -> list[MappingError]:
    """Every problem of a mapping file, each naming file, line, column and field."""
    return _compile(Path(path), tables)[1]


def load_mapping(path: Path, tables: Mapping[str, TableSpec] | None = None) -> MappingSet:
    """Load and check a mapping file; raise one MappingError listing every problem."""
    mapping, errors = _compile(Path(path), tables)
    if errors:
        first = errors[0]
        rest = "".join(f"\n{e}" for e in errors[1:])
        error = MappingError(
            first.reason + rest, file=first.file, line=first.line, column=first.column, field=first.field
        )
        error.errors = errors
        raise error
    assert mapping is not None
    return mapping
