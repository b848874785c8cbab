# ruff: noqa
# mypy: ignore-errors
"""Loading and checking a mapping file.

`check_mapping` returns every problem of a file as a `MappingError` naming file, line,
column and field, with the nearest valid alternative; `load_mapping` raises them all at
once or returns a compiled `MappingSet` (see `syncd.mapping.model`).
"""

from __future__ import annotations

import difflib
import functools
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from syncd.errors import MappingError
from syncd.mapping.locate import Locations, locate
from tests.mapping.old_mapping.model import (
    DEFAULT_KEYS,
    FIELD_KEYS,
    OPERATORS,
    STREAM_KEYS,
    TABLE_KEYS,
    TOP_KEYS,
    WRITE_MODES,
    Column,
    Condition,
    Constant,
    MappingSet,
    OutputTable,
    Template,
    show_value,
)
from tests.mapping.old_mapping.schema import (
    STREAM_NAMES,
    CompiledPath,
    PathError,
    compile_path,
    compile_rows,
)
from syncd.mapping.tomlerrors import syntax_errors
from tests.mapping.old_mapping.transforms import (
    Defaults,
    Env,
    Transform,
    TransformError,
    check_rounding,
    compile_step,
)
from tests.mapping.old_mapping.types import TEXT, Kind, check_chain, constant_kind, path_kind
from syncd.plugin import TableSpec

Loc = tuple[str | int, ...]
# A connector's check of a constant output: (table, column, value, prefix=...) -> problem or None
ConstantRule = Callable[..., str | None]


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
    rule: ConstantRule | None = None
    errors: list[MappingError] = field(default_factory=list)
    _reported: set[Loc] = field(default_factory=set)

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
        self.error(loc, f"{what} must be a table, got {show_value(value)}")
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
                    self.error(("defaults", "currency_digits", code), f"expects digits 0..8, got {show_value(n)}")
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
                        f"a value table maps text to a text, number or boolean, got {show_value(target)}",
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
                    f'a condition is a table such as {{ path = "draft", equals = true }}, got {show_value(item)}',
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
                        f"{op} expects a list of texts, numbers or booleans, got {show_value(operand)}",
                    )
                    continue
            elif not isinstance(operand, scalar):
                self.error((*here, op), f"{op} expects a text, number or boolean, got {show_value(operand)}")
                continue
            out.append(Condition(path, op, operand))
        return out

    def template(self, loc: Loc, text: Any, paths: Callable[[str], CompiledPath]) -> Template | None:
        if not isinstance(text, str):
            self.error(
                loc, f'template must be text such as "{{number}} – {{customer.name}}", got {show_value(text)}'
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
                        f'rows must be the text path of a list such as "items", got {show_value(rows_text)}'
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
                self.error(here, f"a column is a table with name and from, got {show_value(raw)}")
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
            column = self.column(here, raw, name, defaults, values, paths, rows_text, stream)
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
        stream: str = "",
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
                self.error((*here, "from"), f'from expects a path such as "number", got {show_value(source)}')
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
            self.error((*here, "value"), f"value expects a text, number or boolean, got {show_value(source)}")
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
            self.list_left(here, source, rows_text)
            ok = False
        if ok and stream:
            ok = self.chain_types(here, kind, source, chain, values, stream, rows_text)
        if ok and self.rule is not None:  # a refused constant leaves the column in place
            self.constants(here, name, kind, source, chain, steps, values)
        description = raw.get("description", "")
        write = self.write_mode(here, raw)
        pos = self.locations.key(here)
        if not ok or write is None:
            return None
        wrapped = source if kind != "value" else Constant(source)
        return Column(name, wrapped, tuple(steps), pos[0] if pos else None, str(description), str(write))

    def list_left(self, here: Loc, source: Any, rows_text: Any) -> None:
        """Report a column whose chain still ends on a list (one cell needs one value)."""
        hint = (
            f"; or set rows = {source.text.split('[]')[0]!r} on the table for one row per element"
            if rows_text is None
            else ""
        )
        self.error((*here, "from"), f"{source.text!r} is a list: add a join or sum transform{hint}", "join")

    def write_mode(self, here: Loc, raw: Mapping[str, Any]) -> str | None:
        """The column's `write` key (how a connector may overwrite), or None when it is invalid."""
        write = raw.get("write", "always")
        if write in WRITE_MODES:
            return str(write)
        self.error(
            (*here, "write"),
            f"write must be one of {', '.join(map(repr, WRITE_MODES))}, got {show_value(write)}",
        )
        return None

    def chain_types(
        self,
        here: Loc,
        kind: str,
        source: Any,
        chain: Sequence[Any],
        values: Mapping[str, Mapping[str, Any]],
        stream: str,
        rows_text: Any,
    ) -> bool:
        """Report a transform that cannot work on the type its input always has."""
        if kind == "from":
            rows = compile_rows(stream, rows_text) if isinstance(rows_text, str) else None
            start, label = path_kind(stream, source, rows), repr(source.text)
        elif kind == "value":
            start, label = constant_kind(source), f"the constant {show_value(source)}"
        else:
            start, label = Kind(TEXT), "the template"
        steps = []
        for raw in chain:
            name, arg = (raw, None) if isinstance(raw, str) else next(iter(raw.items()))
            if name == "map" and isinstance(arg, str):
                arg = values.get(arg, {})
            steps.append((name, arg))
        problem = check_chain(label, start, steps)
        if problem is None:
            return True
        index, message = problem
        self.error((*here, "transforms", index), message)
        return False

    def constants(
        self,
        here: Loc,
        column: str,
        kind: str,
        source: Any,
        chain: Sequence[Any],
        steps: Sequence[Transform],
        values: Mapping[str, Mapping[str, Any]],
    ) -> None:
        """Ask the connector about every constant the column can output, where it is written."""
        rule = self.rule
        assert rule is not None
        table = str(here[1])
        env = Env({}, None, lambda s, i: None)

        def verdict(loc: Loc, value: Any, after: Sequence[Transform], what: str, *, prefix: bool = False) -> None:
            try:
                for step in after:
                    value = step.apply(value, env)
            except (ValueError, TypeError, ArithmeticError) as exc:
                problem: str | None = f"fails on every record: {exc}"
            else:
                problem = rule(table, column, value, prefix=prefix) if value is not None else None
            if problem is not None and loc not in self._reported:  # a value table used twice: once
                self._reported.add(loc)
                self.error(loc, f"{what}: {problem}")

        if kind == "value":
            verdict((*here, "value"), source, steps, f"column {column!r}")
        elif kind == "template" and isinstance(source.parts[0], str) and len(source.parts) > 1:
            start = source.parts[0]
            if ":" in start:
                verdict((*here, "template"), start.rsplit(":", 1)[0], (), f"column {column!r}", prefix=True)
        for j, raw in enumerate(chain):
            name, arg = (raw, None) if isinstance(raw, str) else next(iter(raw.items()))
            after = steps[j + 1 :]
            entries: Mapping[str, Any] = values.get(arg, {}) if isinstance(arg, str) else arg or {}
            here_step = (*here, "transforms", j)
            if name == "default":
                verdict((*here_step, "default"), arg, after, f"column {column!r}, default")
            elif name == "map" and isinstance(raw, dict):
                named = isinstance(arg, str)
                for key, target in entries.items():
                    loc: Loc = ("values", str(arg), key) if named else (*here_step, "map")
                    label = f"[values.{arg}] {key!r} (used by column {column!r})" if named else f"column {column!r}, map {key!r}"
                    verdict(loc, target, after, label)
                if "fallback" in raw:
                    verdict((*here_step, "fallback"), raw["fallback"], after, f"column {column!r}, fallback")

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
    path: Path, tables: Mapping[str, TableSpec] | None, rule: ConstantRule | None = None
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
    except tomllib.TOMLDecodeError:
        found = syntax_errors(text)
        return None, [
            MappingError(f"not valid TOML: {words}", file=file, line=line, column=column)
            for line, column, words in found
        ] or [MappingError("not valid TOML", file=file)]
    checker = _Checker(path, locate(text), tables, rule)
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
                    [c.name, c.kind, _source_key(c), [list(s.canonical) for s in c.steps]]
                    + ([c.write] if c.write != "always" else [])
                    for c in t.columns
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
    return show_value(source.value)


def check_mapping(
    path: Path, tables: Mapping[str, TableSpec] | None = None, rule: ConstantRule | None = None
) -> list[MappingError]:
    """Every problem of a mapping file, each naming file, line, column and field.

    `rule` is the connector's check of constant outputs (`Connector.check_constant`).
    """
    return _compile(Path(path), tables, rule)[1]


def load_mapping(
    path: Path, tables: Mapping[str, TableSpec] | None = None, rule: ConstantRule | None = None
) -> MappingSet:
    """Load and check a mapping file; raise one MappingError listing every problem."""
    mapping, errors = _compile(Path(path), tables, rule)
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
