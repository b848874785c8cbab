"""The CSV payments inbox: external payments (checks, wires, deposits) to push to Invoiced.

The inbox is one CSV file or a directory of them (`*.csv`, read in name order). Columns
(header names are case-insensitive; order is free; unknown columns are ignored; UTF-8, or
UTF-16 with a byte-order mark; a file in another encoding is refused, naming the byte offset):

    external_id  required  your id for the payment; stable across runs, at most 120 characters
    invoice      required  the invoice number (e.g. INV-0042) or its Invoiced id
    customer     optional  the customer number (or id); checked against the invoice's customer
    amount       required  a positive decimal, e.g. 1250.00 or 1,250.00 (no currency sign)
    currency     required  3-letter ISO code, e.g. usd
    date         required  YYYY-MM-DD
    method       optional  check | ach | wire | cash | other (default other)
    reference    optional  check number or bank reference (sent as gateway_id)
    notes        optional  free text

A row that cannot be read (bad amount or date, a missing column or value, a duplicate
external id with different content) is rejected with a reason naming the file and line;
the other rows are processed. The push writes the rejected rows, as they were read, with
their reason to a rejects CSV beside the inbox (`payments.rejects.csv` for `payments.csv`,
`inbox.rejects.csv` for a directory `inbox/`), replaced atomically on every push.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path

import structlog

from connectors.csv.files import write_atomic
from syncd.plugin import ExternalPayment, Rejection
from syncd.textdecode import UndecodableText, decode_text

log = structlog.get_logger(__name__)

REQUIRED = ("external_id", "invoice", "amount", "currency", "date")
OPTIONAL = ("customer", "method", "reference", "notes")
COLUMNS = ("external_id", "invoice", "customer", "amount", "currency", "date", "method", "reference", "notes")
METHODS = ("check", "ach", "wire", "cash", "other")
MAX_EXTERNAL_ID = 120  # the outbox key's length
REJECTS_SUFFIX = ".rejects.csv"

_AMOUNT = re.compile(r"^(\d+|\d{1,3}(,\d{3})+)(\.\d+)?$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_CURRENCY = re.compile(r"^[A-Za-z]{3}$")


@dataclass(frozen=True, slots=True)
class RowRejection(Rejection):
    """A row of the inbox that cannot be read; `origin` is `file:line`."""

    origin: str = ""
    row: Mapping[str, str] = field(default_factory=dict)


def rejects_path(inbox: Path) -> Path:
    """Where the rejects CSV of an inbox goes: beside it, never inside a directory inbox."""
    name = inbox.stem if inbox.suffix.lower() == ".csv" else inbox.name
    return inbox.parent / f"{name}{REJECTS_SUFFIX}"


def inbox_files(inbox: Path) -> list[Path]:
    """The CSV files of an inbox, in name order (rejects files and hidden files skipped)."""
    if inbox.is_file():
        return [inbox]
    if not inbox.is_dir():
        return []
    return sorted(
        p
        for p in inbox.iterdir()
        if p.is_file()
        and p.suffix.lower() == ".csv"
        and not p.name.startswith(".")
        and not p.name.lower().endswith(REJECTS_SUFFIX)
    )


def _header_key(name: str) -> str:
    return re.sub(r"[\s-]+", "_", name.strip().lower())


def _parse_amount(text: str) -> Decimal | None:
    if not _AMOUNT.match(text):
        return None
    try:
        value = Decimal(text.replace(",", ""))
    except InvalidOperation:  # pragma: no cover - the pattern admits only digits
        return None
    return value if value.is_finite() else None


@dataclass(slots=True)
class _Row:
    origin: str
    raw: dict[str, str]
    external_id: str
    payment: ExternalPayment | None = None
    reason: str | None = None


def _parse_row(
    raw: dict[str, str],
    origin: str,
    source: str,
    missing_header: Sequence[str],
    extra_cols: Sequence[str],
    overflow: bool,
) -> _Row:
    ext = (raw.get("external_id") or "").strip()
    row = _Row(origin=origin, raw=raw, external_id=ext)

    def fail(reason: str) -> _Row:
        row.reason = f"{origin}: {reason}"
        return row

    if missing_header:
        return fail(f"missing column {', '.join(missing_header)} (not in the header)")
    short = [c for c in REQUIRED if raw.get(c) is None]
    if short:
        return fail(f"missing column {', '.join(short)} (row has fewer fields than the header)")
    if overflow:
        return fail("more fields than the header (an unquoted comma in an amount or note?)")
    empty = [c for c in REQUIRED if not (raw.get(c) or "").strip()]
    if empty:
        return fail(f"missing value for {', '.join(empty)}")
    if len(ext) > MAX_EXTERNAL_ID:
        return fail(f"external_id longer than {MAX_EXTERNAL_ID} characters")
    amount_text = raw["amount"].strip()
    amount = _parse_amount(amount_text)
    if amount is None:
        return fail(f"bad amount {amount_text!r} (expected a decimal such as 1250.00)")
    currency = raw["currency"].strip()
    if not _CURRENCY.match(currency):
        return fail(f"bad currency {currency!r} (expected a 3-letter code such as usd)")
    date_text = raw["date"].strip()
    try:
        if not _DATE.match(date_text):
            raise ValueError(date_text)
        date = dt.date.fromisoformat(date_text)
    except ValueError:
        return fail(f"bad date {date_text!r} (expected YYYY-MM-DD)")
    method = (raw.get("method") or "").strip().lower() or "other"
    if method not in METHODS:
        return fail(f"bad method {method!r} (one of {', '.join(METHODS)})")

    def opt(col: str) -> str | None:
        return (raw.get(col) or "").strip() or None

    row.payment = ExternalPayment(
        external_id=ext,
        source=source,
        invoice=raw["invoice"].strip(),
        amount=amount,
        currency=currency.lower(),
        date=date,
        method=method,
        customer=opt("customer"),
        reference=opt("reference"),
        notes=opt("notes"),
        origin=origin,
        extra={c: raw[c] for c in extra_cols if raw.get(c)},
    )
    return row


def _read_file(path: Path, source: str) -> list[_Row]:
    try:
        text = decode_text(path.read_bytes(), str(path))
    except OSError as exc:
        return [
            _Row(origin=f"{path}:1", raw={}, external_id="", reason=f"{path}: cannot read: {exc.strerror}")
        ]
    except UndecodableText as exc:  # a guessed code page would misread names and notes silently
        return [_Row(origin=f"{path}:1", raw={}, external_id="", reason=str(exc))]
    first = text.split("\n", 1)[0]
    # Spreadsheets in many European locales save "CSV" with semicolons.
    delimiter = ";" if ";" in first and "," not in first else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows: list[_Row] = []
    try:
        header = next(reader)
    except StopIteration:
        return rows
    except csv.Error as exc:
        return [_Row(origin=f"{path}:1", raw={}, external_id="", reason=f"{path}:1: {exc}")]
    keys = [_header_key(h) for h in header]
    missing_header = [c for c in REQUIRED if c not in keys]
    extra_cols = [k for k in keys if k and k not in COLUMNS]
    line = reader.line_num
    while True:
        start = line + 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            rows.append(
                _Row(origin=f"{path}:{start}", raw={}, external_id="", reason=f"{path}:{start}: {exc}")
            )
            break
        line = reader.line_num
        if not any(c.strip() for c in cells):
            continue
        raw: dict[str, str] = {}
        for i, key in enumerate(keys):
            if i < len(cells):
                raw[key] = cells[i]
        overflow = len(cells) > len(keys)  # even blank: the columns may have shifted
        rows.append(_parse_row(raw, f"{path}:{start}", source, missing_header, extra_cols, overflow))
    return rows


def _content(payment: ExternalPayment) -> tuple[object, ...]:
    p = payment
    return (p.invoice, p.customer, p.amount, p.currency, p.date, p.method, p.reference, p.notes)


def _flag_duplicates(rows: list[_Row]) -> None:
    by_id: dict[str, list[_Row]] = {}
    for row in rows:
        if row.external_id:
            by_id.setdefault(row.external_id, []).append(row)
    for ext, group in by_id.items():
        if len(group) < 2:
            continue
        contents = {_content(r.payment) if r.payment else ("unreadable", r.origin) for r in group}
        if len(contents) == 1:
            # The same payment twice (a file copied into the inbox again): read it once.
            for dup in group[1:]:
                dup.payment, dup.reason = None, ""
            continue
        places = ", ".join(r.origin for r in group)
        for row in group:
            if row.payment is not None:
                row.payment = None
                row.reason = (
                    f"{row.origin}: duplicate external id {ext!r} with different content (rows {places})"
                )


class Inbox:
    """The payments of a CSV inbox, as `ExternalPayment`s and `RowRejection`s.

    Iterating reads every file again. `write_rejects()` writes the rejects CSV beside
    the inbox from the rejections of the last iteration (the push calls it).
    """

    def __init__(self, path: Path, *, source: str = "csv", rejects: Path | None = None) -> None:
        self.path = path
        self.source = source
        self.rejects = rejects or rejects_path(path)
        self._raw: dict[str, dict[str, str]] = {}
        self._header: list[str] = []

    def __iter__(self) -> Iterator[ExternalPayment | Rejection]:
        if not self.path.exists():
            log.warning("inbox.missing", path=str(self.path))
            return
        rows: list[_Row] = []
        for file in inbox_files(self.path):
            if file.resolve() == self.rejects.resolve():
                continue
            rows.extend(_read_file(file, self.source))
        _flag_duplicates(rows)
        self._raw = {r.origin: r.raw for r in rows}
        extra = sorted({str(k) for r in rows for k in r.raw if k and k not in COLUMNS})
        self._header = [*COLUMNS, *extra]
        for row in rows:
            if row.payment is not None:
                yield row.payment
            elif row.reason:
                yield RowRejection(
                    stream="payments",
                    record_id=row.external_id or row.origin,
                    reason=row.reason,
                    origin=row.origin,
                    row=row.raw,
                )

    def write_rejects(self, rejections: Sequence[tuple[str, str, str]]) -> Path | None:
        """Write `(external_id, origin, reason)` rows read from this inbox to the rejects CSV.

        Rejections of payments not read from this inbox are skipped. With none left and no
        rejects file yet, nothing is written; otherwise the file is replaced atomically.
        """
        rows = []
        for external_id, origin, reason in rejections:
            if origin not in self._raw:
                continue
            file, _, line = origin.rpartition(":")
            raw = self._raw[origin]
            rows.append({**raw, "file": file, "line": line, "reason": reason, "external_id": external_id})
        rows.sort(key=lambda r: (r["file"], int(r["line"]) if r["line"].isdigit() else 0))
        if not rows and not self.rejects.exists():
            return None
        write_atomic(self.rejects, ["file", "line", "reason", *self._header], rows)
        return self.rejects


def read_inbox(path: Path, *, source: str = "csv") -> list[ExternalPayment | Rejection]:
    """Every payment and rejection of the inbox at `path` (a file or a directory)."""
    return list(Inbox(path, source=source))
