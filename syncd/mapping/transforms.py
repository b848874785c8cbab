"""The fixed transform vocabulary: each step is checked once at load, then applied per value.

A step in a file is a bare name (`"upper"`) or an inline table whose first key is the name
and whose other keys are options (`{ date = "%d/%m/%Y", tz = "Europe/Paris" }`). Nothing
here evaluates text from the file: formats go to `strftime`, numbers to `Decimal`.
"""

from __future__ import annotations

import datetime as dt
import difflib
import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Context, Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import simplejson

from syncd.mapping.schema import CompiledPath, PathError, Resolve, Step, ref_target_reader

ROUNDING = {"half_up": ROUND_HALF_UP, "half_even": ROUND_HALF_EVEN}

# ISO 4217 minor units that differ from 2 (currencies Invoiced supports).
CURRENCY_DIGITS: dict[str, int] = {
    **dict.fromkeys(
        ["BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND", "VUV"], 0
    ),
    **dict.fromkeys(["XAF", "XOF", "XPF"], 0),
    **dict.fromkeys(["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"], 3),
    "CLF": 4,
}
_WIDE = Context(prec=100)  # quantize never fails for lack of precision
# _WIDE with each rounding: `context.quantize(x, q)` is twice as fast as keyword arguments
_ROUNDERS = {name: Context(prec=100, rounding=mode) for name, mode in ROUNDING.items()}
_FORMATTED_CACHE = 4096  # formatted timestamps kept per format and zone
_CURRENCIES_KEPT = 256  # currency codes whose quantum a money step remembers
_UTC_NAMES = frozenset({"UTC", "Etc/UTC"})
# "MM:SS+00:00" for each second of an hour, as `isoformat` ends a whole-second UTC time
_MINUTES_SECONDS_UTC = tuple(f"{m:02d}:{s:02d}+00:00" for m in range(60) for s in range(60))
_HOURS = tuple(f"{h:02d}:" for h in range(24))  # "HH:" for each hour of a day
_DAY_FORMAT = re.compile(r"(?:[^%]|%[aAbBdjmyYFeuw%])*")  # strftime fields that name the day, no time
# Formatted timestamps by (format, zone, seconds per key), shared by every date step of every
# mapping in the process: a first sync meets each day once per column and per mapping
# otherwise (invoice date, due date, created, the lines' date; the CSV's and the ledger's).
_FORMATTED: dict[tuple[str, str, int], dict[int, str]] = {}
_UTC_DAYS: dict[int, str] = {}  # day since the epoch -> "YYYY-MM-DDT", for every UTC `datetime`


def forget_formatted() -> None:
    """Drop every kept date text (benchmarks of a cold start)."""
    for texts in (*_FORMATTED.values(), _UTC_DAYS):
        texts.clear()  # (in place: the steps' row builders hold these dicts)


class TransformError(ValueError):
    """A step the vocabulary does not allow; `where` is the key inside the step, if any."""

    def __init__(self, message: str, where: tuple[str, ...] = (), suggestion: str | None = None) -> None:
        super().__init__(message)
        self.where = where
        self.suggestion = suggestion


class ApplyError(ValueError):
    """A value a step cannot handle (e.g. a date that is not a timestamp)."""


@dataclass(frozen=True)
class Defaults:
    """The file's `[defaults]`: per-connector settings every step starts from."""

    timezone: str = "UTC"
    rounding: str = "half_up"
    date_format: str = "%Y-%m-%d"
    datetime_format: str = "iso"
    currency_digits: Mapping[str, int] = field(default_factory=dict)

    def digits(self, currency: Any) -> int:
        """Minor-unit digits of a currency code (2 when unknown or missing)."""
        code = str(currency).upper() if currency else ""
        if code in self.currency_digits:
            return self.currency_digits[code]
        return CURRENCY_DIGITS.get(code, 2)


@dataclass(slots=True)
class Env:
    """What a step may read besides its input: the record, the current row, a resolver.

    `memo`, shared by every row of one record, keeps what record-level paths through a
    reference or a list read, so that `customer.name` is looked up once per record, not
    once per row, column and table.
    """

    record: Mapping[str, Any]
    row: Any
    resolve: Resolve
    memo: dict[str, Any] | None = field(default=None, repr=False, compare=False)

    def read(self, path: CompiledPath) -> Any:
        """The value at `path`, from the current row when the path is relative to it."""
        if path.relative:
            return path.reader(self.row, self.resolve)
        memo = self.memo
        if memo is None or path.cheap:
            return path.reader(self.record, self.resolve)
        text = path.text  # one stream per memo, so the text names the path
        if text in memo:
            return memo[text]
        value = memo[text] = path.reader(self.record, self.resolve)
        return value


def path_getter(path: CompiledPath) -> Callable[[Env], Any]:
    """`lambda env: env.read(path)`, specialised once for the path's kind."""
    read = path.reader
    key = path.key
    if path.relative:
        if key is not None:
            return lambda env: row.get(key) if type(row := env.row) is dict else read(row, env.resolve)
        return lambda env: read(env.row, env.resolve)
    if path.cheap:
        if key is not None:
            return lambda env: data.get(key) if type(data := env.record) is dict else read(data, env.resolve)
        return lambda env: read(env.record, env.resolve)
    steps = path.steps
    if len(steps) == 2 and steps[0].ref is not None and _plain_step(steps[1]) and steps[1].key != "id":
        return _through_reference(steps[0].key, steps[0].ref, steps[1].key)
    text = path.text

    def memoised(env: Env) -> Any:  # Env.read, inlined
        memo = env.memo
        if memo is None:
            return read(env.record, env.resolve)
        if text in memo:
            return memo[text]
        value = memo[text] = read(env.record, env.resolve)
        return value

    return memoised


def _plain_step(step: Step) -> bool:
    return step.ref is None and not step.many


def _through_reference(field_name: str, stream: str, key: str) -> Callable[[Env], Any]:
    """`customer.name`: the referenced record looked up once per record (per memo), then its key.

    Every path through the same reference (`customer.name`, `customer.number`) shares the
    lookup (`reference_target`).
    """
    target_of = reference_target(field_name, stream)

    def through(env: Env) -> Any:
        target = target_of(env)
        return None if target is None else target.get(key)

    return through


@functools.cache  # one per reference of the schema: a builder finds the columns that share one
def reference_target(field_name: str, stream: str) -> Callable[[Env], Mapping[str, Any] | None]:
    """The record a reference names, looked up once per record (per memo): every read through
    it, a getter's or a row builder's, shares that lookup. The memo keeps it under
    `customer.`, which no path's text can be."""
    target_of = ref_target_reader(field_name, stream)
    marker = field_name + "."

    def target(env: Env) -> Mapping[str, Any] | None:
        memo = env.memo
        if memo is None:
            return target_of(env.record, env.resolve)
        if marker in memo:
            found: Mapping[str, Any] | None = memo[marker]
            return found
        found = memo[marker] = target_of(env.record, env.resolve)
        return found

    return target


def key_total(key: str, general: Callable[[Env], Any]) -> Callable[[Any, Env], Any]:
    """`total(elements, env)`: `sum` of `list[].key`, given the value the record holds at `list`.

    A list of dicts (the API's) is added here; any other value, or an element that is not a
    dict, is `general(env)`: the path read and summed as a column computes it.
    """
    add = _WIDE.add

    def total(elements: Any, env: Env) -> Any:
        if type(elements) is not list:
            return general(env)
        result = _ZERO
        for element in elements:
            if type(element) is not dict:
                return general(env)
            v = element.get(key)
            if v is not None:
                result = add(result, v if type(v) is Decimal and v.is_finite() else to_decimal(v))
        return result

    return total


@dataclass(frozen=True)
class Inline:
    """How a row builder (syncd.mapping.rowcode) writes a step's usual case inline.

    `expr` is a fixed expression of this module, formatted with `input` (the step's input
    expression), `v` and `t` (variables of its own), `apply` (the step's `apply`, called
    for every other case) and each name of `cells` (the objects it uses). It may read `d`,
    the record (a dict), and `env`. Its value is always what `apply` would answer.
    """

    expr: str
    cells: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Transform:
    """One compiled step: `apply(value, env)`, its canonical form, and list handling."""

    name: str
    apply: Callable[[Any, Env], Any]
    canonical: tuple[Any, ...]
    takes_list: bool = False
    reads_row: bool = False  # `apply` reads the current row (a money step's row-relative currency)
    inline: Inline | None = field(default=None, compare=False)


PathCompiler = Callable[[str], CompiledPath]

NAMES = (
    "date",
    "datetime",
    "money",
    "decimal",
    "text",
    "upper",
    "lower",
    "strip",
    "truncate",
    "default",
    "map",
    "join",
    "sum",
)
_OPTIONS: dict[str, tuple[str, ...]] = {
    "date": ("tz",),
    "datetime": ("tz",),
    "money": ("rounding",),
    "decimal": ("rounding",),
    "map": ("fallback",),
}
_NEED_ARG = {"truncate", "default", "map"}
_MISSING = object()
_NOT_READ: Any = object()
_ZERO = Decimal(0)


def _show(value: Any) -> str:
    return simplejson.dumps(value, use_decimal=True, default=str)


def to_text(value: Any) -> Any:
    """A value as text: exact decimals, `true`/`false`, JSON for objects; None stays None."""
    if type(value) is int:
        return str(value)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dict | list | tuple):
        return simplejson.dumps(value, use_decimal=True, sort_keys=True)
    return str(value)


def to_decimal(value: Any) -> Decimal:
    """An exact Decimal from an int, a Decimal or numeric text (a float via its shortest repr)."""
    if type(value) is Decimal and value.is_finite():
        return value  # the usual case: money parsed from JSON
    if type(value) is int:
        return Decimal(value)  # whole amounts: JSON integers
    if isinstance(value, bool):
        raise ApplyError(f"expected a number, got {_show(value)}")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, float):
        result = Decimal(repr(value))
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except InvalidOperation:
            raise ApplyError(f"expected a number, got {_show(value)}") from None
    else:
        raise ApplyError(f"expected a number, got {_show(value)}")
    if not result.is_finite():
        raise ApplyError(f"expected a finite number, got {_show(value)}")
    return result


@functools.lru_cache(maxsize=64)
def _exponent(digits: int) -> Decimal:
    return Decimal(1).scaleb(-digits)


def _timestamp(value: Any, tz: ZoneInfo) -> dt.datetime:
    if type(value) is int:
        try:
            return dt.datetime.fromtimestamp(value, tz)
        except (OverflowError, OSError, ValueError):
            raise ApplyError(f"expected a unix timestamp, got {_show(value)}") from None
    if isinstance(value, bool) or not isinstance(value, int | Decimal | str | float):
        raise ApplyError(f"expected a unix timestamp, got {_show(value)}")
    try:
        seconds = value if type(value) is int else int(to_decimal(value))
        return dt.datetime.fromtimestamp(seconds, tz=tz)
    except (ApplyError, OverflowError, OSError, ValueError):
        raise ApplyError(f"expected a unix timestamp, got {_show(value)}") from None


def _zone(name: Any) -> ZoneInfo:
    if not isinstance(name, str) or not name:
        raise TransformError(f"expects a time zone name such as 'Europe/Paris', got {_show(name)}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        import zoneinfo

        near = difflib.get_close_matches(name, sorted(zoneinfo.available_timezones()), n=1)
        raise TransformError(f"unknown time zone {name!r}", suggestion=near[0] if near else None) from None


def _strftime(fmt: Any, what: str) -> str:
    if not isinstance(fmt, str) or not fmt:
        raise TransformError(f"expects a {what} format such as '%Y-%m-%d', got {_show(fmt)}")
    try:
        dt.datetime(2024, 3, 31, 14, 5, tzinfo=dt.UTC).strftime(fmt)
    except ValueError as exc:
        raise TransformError(f"invalid {what} format {fmt!r}: {exc}") from None
    return fmt


def check_rounding(value: Any) -> str:
    """A rounding mode name, or TransformError naming the valid ones."""
    if value not in ROUNDING:
        near = difflib.get_close_matches(str(value), list(ROUNDING), n=1)
        raise TransformError(
            f"rounding must be 'half_up' or 'half_even', got {_show(value)}",
            suggestion=near[0] if near else None,
        )
    return str(value)


def _is_scalar(value: Any) -> bool:
    return isinstance(value, str | int | Decimal | bool)


def compile_step(
    raw: Any,
    defaults: Defaults,
    paths: PathCompiler,
    value_tables: Mapping[str, Mapping[str, Any]],
) -> Transform:
    """Check one step from a file and compile it; raise TransformError saying what is allowed."""
    if isinstance(raw, str):
        name, arg, options = raw, _MISSING, {}
        if name not in NAMES:
            near = difflib.get_close_matches(name, NAMES, n=1)
            raise TransformError(
                f"unknown transform {name!r}; transforms: {', '.join(NAMES)}",
                suggestion=near[0] if near else None,
            )
    elif isinstance(raw, dict) and raw:
        name = next(iter(raw))
        arg = raw[name]
        options = {k: v for k, v in raw.items() if k != name}
        if name not in NAMES:
            near = difflib.get_close_matches(name, NAMES, n=1)
            raise TransformError(
                f"unknown transform {name!r} (the first key of a step names it); transforms: {', '.join(NAMES)}",
                (name,),
                near[0] if near else None,
            )
        allowed = _OPTIONS.get(name, ())
        for key in options:
            if key not in allowed:
                near = difflib.get_close_matches(key, allowed, n=1)
                what = f"options: {', '.join(allowed)}" if allowed else "no options"
                raise TransformError(
                    f"{name} has no option {key!r} ({what})", (key,), near[0] if near else None
                )
    else:
        raise TransformError(
            f'a transform is a name such as "upper" or a table such as {{ truncate = 40 }}, got {_show(raw)}'
        )
    if arg is _MISSING and name in _NEED_ARG:
        example = {
            "truncate": "{ truncate = 40 }",
            "default": '{ default = "n/a" }',
            "map": '{ map = "NAME" }',
        }
        raise TransformError(f"{name} needs an argument: write {example[name]}")
    builder = _BUILDERS[name]
    return builder(name, arg, options, defaults, paths, value_tables)


Builder = Callable[
    [str, Any, dict[str, Any], Defaults, PathCompiler, Mapping[str, Mapping[str, Any]]], Transform
]


def _no_arg(name: str, arg: Any) -> None:
    if arg is not _MISSING and arg is not True:
        raise TransformError(f'{name} takes no argument: write "{name}"', (name,))


def _date(name: str, arg: Any, options: dict[str, Any], d: Defaults, *_: Any) -> Transform:
    default_fmt = d.date_format if name == "date" else d.datetime_format
    fmt = default_fmt if arg is _MISSING else arg
    if not (name == "datetime" and fmt == "iso"):
        try:
            fmt = _strftime(fmt, name)
        except TransformError as exc:
            raise TransformError(str(exc), (name,)) from None
    try:
        zone_name = options.get("tz", d.timezone)
        tz = _zone(zone_name)
    except TransformError as exc:
        raise TransformError(str(exc), ("tz",), exc.suggestion) from None

    iso = fmt == "iso"
    if iso and zone_name in _UTC_NAMES:
        apply_iso, inline = _utc_iso(tz)
        return Transform(name, apply_iso, (name, fmt, zone_name), inline=inline)
    # Timestamps repeat (dates, due dates) and formatting one costs microseconds: keep recent
    # ones. Only ints, the API's type: equal keys of other types (True == 1) differ here.
    # A UTC date without time fields is the same all day long: keep it by day.
    per = 86400 if zone_name in _UTC_NAMES and not iso and _DAY_FORMAT.fullmatch(fmt) else 1
    texts = _FORMATTED.setdefault((fmt, zone_name, per), {})
    iso_date = fmt == "%Y-%m-%d"  # the default: `date().isoformat()`, 20x faster, from year 1000

    def apply(value: Any, env: Env) -> Any:
        if type(value) is int:
            text = texts.get(value // per)
            if text is not None:
                return text
        elif value is None or value == "":
            return None
        moment = _timestamp(value, tz)
        if iso:
            text = moment.isoformat()
        elif iso_date and moment.year >= 1000:
            text = moment.date().isoformat()
        else:
            text = moment.strftime(fmt)
        if type(value) is int:
            if len(texts) >= _FORMATTED_CACHE:
                texts.clear()
            texts[value // per] = text
        return text

    cached = Inline(
        "{t} if type({v} := {input}) is {int} and ({t} := {cached}({v} // {per})) is not None else {apply}({v}, env)",
        {"cached": texts.get, "per": per, "int": int},
    )
    return Transform(name, apply, (name, fmt, zone_name), inline=cached)


def _utc_iso(tz: ZoneInfo) -> tuple[Callable[[Any, Env], Any], Inline]:
    """`datetime` in UTC ISO 8601: the text of each day kept, its hour, minutes and seconds appended.

    Timestamps such as `updated_at` rarely repeat, nor do their hours over a few years of
    records; their days do. Formatting one costs a microsecond, appending three texts a
    fraction of one.
    """
    days = _UTC_DAYS

    def apply(value: Any, env: Env) -> Any:
        if type(value) is int:
            day = days.get(value // 86400)
            if day is not None:
                return day + _HOURS[value % 86400 // 3600] + _MINUTES_SECONDS_UTC[value % 3600]
        elif value is None or value == "":
            return None
        text = _timestamp(value, tz).isoformat()
        if type(value) is int:
            if len(days) >= _FORMATTED_CACHE:
                days.clear()
            days[value // 86400] = text[: text.index("T") + 1]
        return text

    inline = Inline(
        "{t} + {hours}[{v} % 86400 // 3600] + {tails}[{v} % 3600]"
        " if type({v} := {input}) is {int} and ({t} := {day}({v} // 86400)) is not None"
        " else {apply}({v}, env)",
        {"day": days.get, "hours": _HOURS, "tails": _MINUTES_SECONDS_UTC, "int": int},
    )
    return apply, inline


def _rounding(options: dict[str, Any], d: Defaults) -> str:
    try:
        return check_rounding(options.get("rounding", d.rounding))
    except TransformError as exc:
        raise TransformError(str(exc), ("rounding",), exc.suggestion) from None


def _money(
    name: str, arg: Any, options: dict[str, Any], d: Defaults, paths: PathCompiler, *_: Any
) -> Transform:
    source = "currency" if arg is _MISSING else arg
    if not isinstance(source, str):
        raise TransformError(
            f'money expects the path of the currency code, e.g. "currency", got {_show(source)}', (name,)
        )
    try:
        currency = paths(source)
    except PathError as exc:
        raise TransformError(f"money: {exc}", (name,), exc.suggestion) from None
    rounding = _rounding(options, d)
    quantize = _ROUNDERS[rounding].quantize
    exponents: dict[str, Decimal] = {}  # currency code as read -> its quantum
    read_code = path_getter(currency)
    # a key of the record (`currency`, the usual case): read inline from a dict record
    key = currency.key if not currency.relative else None

    def apply(value: Any, env: Env) -> Any:
        if type(value) is Decimal and value.is_finite():
            number = value
        elif value is None or value == "":  # (`Decimal == ""` costs an ABC check: not for the usual type)
            return None
        else:
            number = _NOT_READ
        data = env.record
        code = data.get(key) if key is not None and type(data) is dict else read_code(env)
        exponent = exponents.get(code) if type(code) is str else None
        if exponent is None:
            exponent = _exponent(d.digits(code))
            if type(code) is str and len(exponents) < _CURRENCIES_KEPT:  # bounded: codes come from data
                exponents[code] = exponent
        return quantize(to_decimal(value) if number is _NOT_READ else number, exponent)

    digits = tuple(sorted(d.currency_digits.items()))
    # a currency code `apply` has seen (the usual case) reads its quantum from `exponents`;
    # a whole amount (a JSON integer) is quantized as is: the context converts an int exactly
    inline = None
    if key is not None:
        inline = Inline(
            "{quantize}({v}, {t}) if (type({v} := {input}) is {decimal} and {v}.is_finite() or type({v}) is int)"
            " and ({t} := {exponent}(d.get({key}))) is not None else {apply}({v}, env)",
            {"quantize": quantize, "decimal": Decimal, "exponent": exponents.get, "key": key},
        )
    return Transform(
        name, apply, (name, source, rounding, digits), reads_row=currency.relative, inline=inline
    )


def _decimal(name: str, arg: Any, options: dict[str, Any], d: Defaults, *_: Any) -> Transform:
    digits = None if arg is _MISSING else arg
    if digits is not None and (isinstance(digits, bool) or not isinstance(digits, int) or digits < 0):
        raise TransformError(
            f"decimal expects a number of digits (an integer ≥ 0), got {_show(arg)}", (name,)
        )
    rounding = _rounding(options, d)
    quantize = _ROUNDERS[rounding].quantize

    def apply(value: Any, env: Env) -> Any:
        if type(value) is not Decimal and (value is None or value == ""):
            return None
        number = to_decimal(value)
        return number if digits is None else quantize(number, _exponent(digits))

    def exact(value: Any, env: Env) -> Any:  # `apply` without digits, the usual types first
        if type(value) is Decimal and value.is_finite():
            return value
        if type(value) is int:
            return Decimal(value)
        if value is None or value == "":
            return None
        return to_decimal(value)

    canonical = (name, digits, rounding if digits is not None else None)
    if digits is not None:
        return Transform(name, apply, canonical)
    inline = Inline(
        "{v} if type({v} := {input}) is {decimal} and {v}.is_finite() else {apply}({v}, env)",
        {"decimal": Decimal},
    )
    return Transform(name, exact, canonical, inline=inline)


def _text_like(name: str, arg: Any, *_: Any) -> Transform:
    _no_arg(name, arg)
    ops: dict[str, Callable[[str], str]] = {
        "text": lambda s: s,
        "upper": str.upper,
        "lower": str.lower,
        "strip": str.strip,
    }
    op = ops[name]
    if name == "text":
        as_is = Inline("{v} if type({v} := {input}) is str or {v} is None else {apply}({v}, env)")
        return Transform(name, lambda value, env: to_text(value), (name,), inline=as_is)

    def apply(value: Any, env: Env) -> Any:
        if type(value) is str:
            return op(value)
        text = to_text(value)
        return None if text is None else op(text)

    inline = Inline(
        "{op}({v}) if type({v} := {input}) is {str} else {apply}({v}, env)", {"op": op, "str": str}
    )
    return Transform(name, apply, (name,), inline=inline)


def _truncate(name: str, arg: Any, *_: Any) -> Transform:
    if isinstance(arg, bool) or not isinstance(arg, int) or arg < 1:
        raise TransformError(f"truncate expects a length (an integer ≥ 1), got {_show(arg)}", (name,))

    def apply(value: Any, env: Env) -> Any:
        text = to_text(value)
        return None if text is None else text[:arg]

    return Transform(name, apply, (name, arg))


def _default(name: str, arg: Any, *_: Any) -> Transform:
    if not _is_scalar(arg):
        raise TransformError(f"default expects a text, number or boolean, got {_show(arg)}", (name,))

    def apply(value: Any, env: Env) -> Any:
        if type(value) is str:
            return value if value else arg
        return arg if value is None or value in ("", []) else value

    inline = Inline("{v} if type({v} := {input}) is str and {v} else {apply}({v}, env)")
    return Transform(name, apply, (name, _show(arg)), takes_list=True, inline=inline)


def _map(
    name: str,
    arg: Any,
    options: dict[str, Any],
    d: Defaults,
    paths: PathCompiler,
    value_tables: Mapping[str, Mapping[str, Any]],
) -> Transform:
    if isinstance(arg, str):
        if arg not in value_tables:
            near = difflib.get_close_matches(arg, list(value_tables), n=1)
            known = ", ".join(value_tables) or "none defined"
            raise TransformError(
                f"no value table [values.{arg}] (value tables: {known})", (name,), near[0] if near else None
            )
        table, label = value_tables[arg], f"[values.{arg}]"
    elif isinstance(arg, dict):
        table, label = arg, "the inline value table"
    else:
        raise TransformError(
            f"map expects the name of a [values.NAME] table or an inline table, got {_show(arg)}", (name,)
        )
    for key, target in table.items():
        if not _is_scalar(target):
            raise TransformError(f"{label}: the value of {key!r} must be a text, number or boolean", (name,))
    has_fallback = "fallback" in options
    fallback = options.get("fallback")
    if has_fallback and not _is_scalar(fallback):
        raise TransformError(
            f"fallback expects a text, number or boolean, got {_show(fallback)}", ("fallback",)
        )

    def apply(value: Any, env: Env) -> Any:
        if value is None:
            return None
        key = to_text(value)
        if key in table:
            return table[key]
        if has_fallback:
            return fallback
        raise ApplyError(f"{_show(key)} is not in {label} and the step has no fallback")

    canonical = (
        name,
        tuple((k, _show(v)) for k, v in table.items()),
        _show(fallback) if has_fallback else None,
    )
    # a text in the table (the usual case) is its entry: entries are never None (scalars)
    inline = Inline(
        "{t} if type({v} := {input}) is str and ({t} := {entry}({v})) is not None else {apply}({v}, env)",
        {"entry": table.get},
    )
    return Transform(name, apply, canonical, inline=inline)


def _join(name: str, arg: Any, *_: Any) -> Transform:
    sep = ", " if arg is _MISSING else arg
    if not isinstance(sep, str):
        raise TransformError(f'join expects a separator text such as ", ", got {_show(arg)}', (name,))

    def apply(value: Any, env: Env) -> Any:
        if value is None:
            return None
        items = value if isinstance(value, list | tuple) else [value]
        return sep.join(str(to_text(v)) for v in items if v is not None)

    return Transform(name, apply, (name, sep), takes_list=True)


def _sum(name: str, arg: Any, *_: Any) -> Transform:
    _no_arg(name, arg)
    add = _WIDE.add

    def apply(value: Any, env: Env) -> Any:
        if value is None:
            return None
        items = value if isinstance(value, (list, tuple)) else [value]
        total = _ZERO
        for v in items:
            if v is not None:
                total = add(total, v if type(v) is Decimal and v.is_finite() else to_decimal(v))
        return total

    # no amounts (an invoice without discounts, the usual case): zero, without a call
    inline = Inline(
        "{zero} if type({v} := {input}) is {list} and not {v} else {apply}({v}, env)",
        {"zero": _ZERO, "list": list},
    )
    return Transform(name, apply, (name,), takes_list=True, inline=inline)


_BUILDERS: dict[str, Builder] = {
    "date": _date,
    "datetime": _date,
    "money": _money,
    "decimal": _decimal,
    "text": _text_like,
    "upper": _text_like,
    "lower": _text_like,
    "strip": _text_like,
    "truncate": _truncate,
    "default": _default,
    "map": _map,
    "join": _join,
    "sum": _sum,
}
