"""The fixed transform vocabulary: each step is checked once at load, then applied per value.

A step in a file is a bare name (`"upper"`) or an inline table whose first key is the name
and whose other keys are options (`{ date = "%d/%m/%Y", tz = "Europe/Paris" }`). Nothing
here evaluates text from the file: formats go to `strftime`, numbers to `Decimal`.
"""

from __future__ import annotations

import datetime as dt
import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Context, Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import simplejson

from syncd.mapping.schema import CompiledPath, PathError, Resolve

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


@dataclass(frozen=True)
class Env:
    """What a step may read besides its input: the record, the current row, a resolver."""

    record: Mapping[str, Any]
    row: Any
    resolve: Resolve

    def read(self, path: CompiledPath) -> Any:
        """The value at `path`, from the current row when the path is relative to it."""
        return path.read(self.row if path.relative else self.record, self.resolve)


@dataclass(frozen=True)
class Transform:
    """One compiled step: `apply(value, env)`, its canonical form, and list handling."""

    name: str
    apply: Callable[[Any, Env], Any]
    canonical: tuple[Any, ...]
    takes_list: bool = False


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


def _show(value: Any) -> str:
    return simplejson.dumps(value, use_decimal=True, default=str)


def to_text(value: Any) -> Any:
    """A value as text: exact decimals, `true`/`false`, JSON for objects; None stays None."""
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


def _quantize(value: Decimal, digits: int, rounding: str) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-digits), rounding=ROUNDING[rounding], context=_WIDE)


def _timestamp(value: Any, tz: ZoneInfo) -> dt.datetime:
    if isinstance(value, bool) or not isinstance(value, int | Decimal | str | float):
        raise ApplyError(f"expected a unix timestamp, got {_show(value)}")
    try:
        seconds = int(to_decimal(value))
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

    def apply(value: Any, env: Env) -> Any:
        if value is None or value == "":
            return None
        moment = _timestamp(value, tz)
        return moment.isoformat() if fmt == "iso" else moment.strftime(fmt)

    return Transform(name, apply, (name, fmt, zone_name))


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

    def apply(value: Any, env: Env) -> Any:
        if value is None or value == "":
            return None
        code = env.read(currency)
        return _quantize(to_decimal(value), d.digits(code), rounding)

    digits = tuple(sorted(d.currency_digits.items()))
    return Transform(name, apply, (name, source, rounding, digits))


def _decimal(name: str, arg: Any, options: dict[str, Any], d: Defaults, *_: Any) -> Transform:
    digits = None if arg is _MISSING else arg
    if digits is not None and (isinstance(digits, bool) or not isinstance(digits, int) or digits < 0):
        raise TransformError(
            f"decimal expects a number of digits (an integer ≥ 0), got {_show(arg)}", (name,)
        )
    rounding = _rounding(options, d)

    def apply(value: Any, env: Env) -> Any:
        if value is None or value == "":
            return None
        number = to_decimal(value)
        return number if digits is None else _quantize(number, digits, rounding)

    return Transform(name, apply, (name, digits, rounding if digits is not None else None))


def _text_like(name: str, arg: Any, *_: Any) -> Transform:
    _no_arg(name, arg)
    ops: dict[str, Callable[[str], str]] = {
        "text": lambda s: s,
        "upper": str.upper,
        "lower": str.lower,
        "strip": str.strip,
    }
    op = ops[name]

    def apply(value: Any, env: Env) -> Any:
        text = to_text(value)
        return None if text is None else op(text)

    return Transform(name, apply, (name,))


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
        return arg if value is None or value in ("", []) else value

    return Transform(name, apply, (name, _show(arg)), takes_list=True)


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
    return Transform(name, apply, canonical)


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

    def apply(value: Any, env: Env) -> Any:
        if value is None:
            return None
        items = value if isinstance(value, list | tuple) else [value]
        total = Decimal(0)
        for v in items:
            if v is not None:
                total = _WIDE.add(total, to_decimal(v))
        return total

    return Transform(name, apply, (name,), takes_list=True)


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
