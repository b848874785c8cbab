"""Ledger connector: Invoiced activity as a balanced double-entry journal.

Each invoice and transaction becomes one entry (a voided invoice also gets its
reversal), kept in the checkpoint store as the connector's output rows, each with its text
already rendered (`rows`), so that a render mostly sorts and copies texts. The journal
file is rendered from the store, in a stable order, and replaced atomically at the end
of a run (and during a long one at least `render_every` seconds apart, further apart as the
journal grows, never more than twenty `render_every`s old: syncd/render_clock.py); an unchanged store
gives a byte-identical file. With `main_journal` set, the output is an include file:
the user's journal is read (for accounts it already declares) but never written.
Payments recorded by hand in `payments_journal` are offered to the push-back; once
pushed, the Invoiced transaction they become is not rendered again while the books hold it.
"""

from __future__ import annotations

import hashlib
import re
import zoneinfo
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

import structlog
from pydantic import BaseModel, ConfigDict, field_validator

from connectors.ledger import books, rows
from connectors.ledger.journal import (
    Accounts,
    Entry,
    EntryError,
    Parts,
    customer_row,
    entry_of_parts,
    imbalance,
    invoice_entries,
    invoice_parts,
    parts_of,
    transaction_entries,
    transaction_parts,
)
from connectors.ledger.render import RENDER_VERSION, Facts, beancount_accounts, entry_block, header
from connectors.ledger.stream import Item, render_items
from syncd.files import sweep_temp_files
from syncd.plugin import (
    ConfigError,
    Connector,
    ConnectorSettings,
    ExternalPayment,
    MappedRecord,
    OutputStore,
    Rejection,
    TableSpec,
)
from syncd.render_clock import RenderClock

__all__ = ["RENDER_VERSION", "AccountSettings", "LedgerConnector", "LedgerSettings"]

log = structlog.get_logger(__name__)

# The connector's tables in the store: journal entries by record, and customers' current accounts.
ENTRIES = "entries"
CUSTOMERS = "customers"


_FALLBACK = Accounts()  # one set of default account names, for the settings and the journal


class AccountSettings(BaseModel):
    """`[connectors.ledger.accounts]`: accounts used when the mapping leaves one empty."""

    model_config = ConfigDict(extra="forbid")

    receivable: str = _FALLBACK.receivable
    revenue: str = _FALLBACK.revenue
    tax: str = _FALLBACK.tax
    discounts: str = _FALLBACK.discounts
    cash: str = _FALLBACK.cash
    adjustments: str = _FALLBACK.adjustments
    rounding: str = _FALLBACK.rounding
    customer_credit: str = _FALLBACK.customer_credit


class LedgerSettings(ConnectorSettings):
    """`[connectors.ledger]`"""

    path: Path = Path("invoiced.journal")
    dialect: Literal["hledger", "ledger", "beancount"] = "hledger"
    main_journal: Path | None = None
    payments_journal: Path | None = None
    timezone: str = "UTC"
    post_statuses: tuple[str, ...] = ("succeeded",)
    render_every: float = 30.0
    accounts: AccountSettings = AccountSettings()

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value


_MONEY_ROW = frozenset({"account", "amount"})
# What a store's text column refuses (PostgreSQL: NUL; any UTF-8 codec: a lone surrogate).
_SURROGATE = re.compile("[\ud800-\udfff]")


@runtime_checkable
class TextStore(OutputStore, Protocol):
    """An OutputStore that keeps rows as text (syncd.store.ConnectorOutputs)."""

    def stored(self, table: str) -> Iterator[dict[str, Any] | str]: ...


def _storable(text: str) -> bool:
    return "\x00" not in text and (text.isascii() or _SURROGATE.search(text) is None)


def _first_line(path: Path) -> str | None:
    try:
        with path.open(encoding="utf-8") as fh:
            return fh.readline().rstrip("\n")
    except (OSError, UnicodeDecodeError):
        return None


def _pushed_from_books(meta: Iterable[tuple[str, str]], in_books: frozenset[str]) -> bool:
    # A payment the push-back posted from our own books comes back as an Invoiced
    # transaction; the books already hold it, so rendering it again would count it twice.
    tags = dict(meta)
    return tags.get("external_source") == books.SOURCE and tags.get("external_id", "") in in_books


class _Customer:
    """A customers row as `Entry.for_customer` applies it, to tell whether it changes an entry."""

    __slots__ = ("accounts", "payee", "row")

    def __init__(self, row: dict[str, Any]) -> None:
        self.row = row
        self.payee: str | None = row.get("payee") or None
        roles = (("ar", "ar_account"), ("credit", "credit_account"))
        self.accounts = {role: str(row[key]) for role, key in roles if row.get(key)}

    def keeps(self, payee: str, postings: Iterable[tuple[str, str, str]]) -> bool:
        """True when `for_customer` leaves an entry of this payee and postings (account, role,
        currency) as it is."""
        if self.payee is not None and self.payee != payee:
            return False
        accounts = self.accounts
        return all(accounts.get(role, acc) == acc for acc, role, _ in postings)


class LedgerConnector(Connector):
    """Writes invoices and transactions as journal entries (hledger, Ledger or Beancount)."""

    name: ClassVar[str] = "ledger"
    local: ClassVar[bool] = True  # rows in the store only
    settings_model: ClassVar[type[ConnectorSettings]] = LedgerSettings
    provides_payments: ClassVar[bool] = True
    tables: ClassVar[dict[str, TableSpec]] = {
        "customers": TableSpec(
            "customers",
            frozenset({"ar_account"}),
            "optional: each customer's current receivable (and credit) account and payee, "
            "applied to all of the customer's entries when the journal is rendered",
        ),
        "invoices": TableSpec(
            "invoices",
            frozenset({"date", "payee", "narration", "ar_account", "total"}),
            "one entry per invoice: debit the customer's receivable for the total",
        ),
        "invoice_lines": TableSpec("invoices", _MONEY_ROW, "rows = items: revenue account per line"),
        "invoice_taxes": TableSpec("invoices", _MONEY_ROW, "rows = taxes: tax liability account"),
        "invoice_discounts": TableSpec("invoices", _MONEY_ROW, "rows = discounts: contra-revenue account"),
        "transactions": TableSpec(
            "transactions",
            frozenset({"date", "payee", "narration", "type", "account", "ar_account", "amount"}),
            "payments, charges, refunds, adjustments: cash account by method, receivable",
        ),
    }

    settings: LedgerSettings

    @classmethod
    def check_constant(
        cls, settings: ConnectorSettings, table: str, column: str, value: Any, *, prefix: bool = False
    ) -> str | None:
        """Accounts (roots, empty parts, characters per dialect), amounts, types, currencies."""
        from connectors.ledger.rules import constant_problem

        dialect = settings.dialect if isinstance(settings, LedgerSettings) else "hledger"
        return constant_problem(dialect, table, column, value, prefix=prefix)

    @classmethod
    def check_record(cls, settings: ConnectorSettings, stream: str, record: MappedRecord) -> str | None:
        """The entries `write` would build, built and thrown away: their refusal, if any."""
        s = settings if isinstance(settings, LedgerSettings) else LedgerSettings()
        accounts, rid = Accounts(**s.accounts.model_dump()), record.record.id
        try:
            if stream == "customers":
                rows = record.tables.get("customers") or ()
                if rows:
                    customer_row(rid, rows[0], accounts)
            elif stream == "invoices":
                invoice_entries(
                    rid, record.record.data, record.tables, accounts, zoneinfo.ZoneInfo(s.timezone)
                )
            elif stream == "transactions":
                transaction_entries(
                    rid,
                    record.record.data,
                    record.tables,
                    accounts,
                    zoneinfo.ZoneInfo(s.timezone),
                    tuple(s.post_statuses),
                )
        except EntryError as exc:
            return f"{stream} {rid}: {exc}"
        return None

    # -- lifecycle ---------------------------------------------------------------------
    def open(self) -> None:
        s = self.settings
        self.path = self._resolve(s.path)
        if self.path.parent.is_dir() and (removed := sweep_temp_files(self.path.parent, self.path.name)):
            log.info("ledger.stale_temp_files_removed", files=[p.name for p in removed])
        self.accounts = Accounts(**s.accounts.model_dump())
        self.tz = zoneinfo.ZoneInfo(s.timezone)
        self.declared: frozenset[str] = frozenset()
        if s.main_journal is not None:
            self.declared = self._check_main(self._resolve(s.main_journal))
        self._clock = RenderClock(s.render_every)

    def _resolve(self, path: Path) -> Path:
        path = path.expanduser()
        return path if path.is_absolute() else self.context.state_dir / path

    def _check_main(self, main: Path) -> frozenset[str]:
        """Accounts and commodities the user's journal declares; warn when it does not include ours."""
        try:
            text = main.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                f"cannot read main journal {main}: {exc.strerror}", key="connectors.ledger.main_journal"
            ) from None
        names = set(re.findall(r"^account\s+(.+?)(?:\s{2,}|\t|\s*;|\s*$)", text, re.M))
        names |= set(re.findall(r"^commodity\s+(?:[\d.,]+\s*)?([A-Za-z]{2,10})\s*$", text, re.M))
        names |= set(re.findall(r"^\d{4}-\d\d-\d\d\s+(?:open|commodity)\s+(\S+)", text, re.M))
        includes = re.findall(r'^!?include\s+"?([^"\n]+?)"?\s*$', text, re.M)
        if not any((main.parent / inc).resolve() == self.path.resolve() for inc in includes):
            line = (
                f'include "{self.path.name}"'
                if self.settings.dialect == "beancount"
                else f"include {self.path.name}"
            )
            log.warning("ledger.not_included", main_journal=str(main), add_line=line)
        return frozenset(names)

    # -- writing -----------------------------------------------------------------------
    def write(self, stream: str, records: Sequence[MappedRecord]) -> list[Rejection]:
        """Turn each record into its entries and keep them in the store; refuse what cannot balance."""
        outputs = self.context.outputs
        as_text = isinstance(outputs, TextStore)
        items: list[tuple[str, str, dict[str, list[Any]]]] = []
        rejected: list[Rejection] = []
        for mapped in records:
            rid = mapped.record.id
            if mapped.record.deleted:
                outputs.delete(stream, rid)
                continue
            table: dict[str, list[Any]]
            try:
                if stream == "customers":
                    found = mapped.tables.get("customers") or ()
                    table = {CUSTOMERS: [customer_row(rid, found[0], self.accounts)] if found else []}
                else:
                    parts = self._parts(stream, mapped)
                    table = {
                        ENTRIES: [self._row_of(p) if as_text else entry_of_parts(p).to_row() for p in parts]
                    }
                    self._clock.wrote(len(parts))
            except EntryError as exc:
                rejected.append(Rejection(stream, rid, f"{stream} {rid}: {exc}"))
                continue
            items.append((stream, rid, table))
        if items:
            outputs.put_many(items)
        return rejected

    def _row(self, e: Entry) -> str | dict[str, Any]:
        """What the store keeps of an entry: its fields and text, else (text the store refuses) a dict."""
        return self._row_of(parts_of(e))

    def _row_of(self, p: Parts) -> str | dict[str, Any]:
        """`_row` of the entry of `p`."""
        try:
            text = rows.encode_parts(p, self.settings.dialect)
        except UnicodeEncodeError:
            return entry_of_parts(p).to_row()
        return text if _storable(text) else entry_of_parts(p).to_row()

    def _parts(self, stream: str, mapped: MappedRecord) -> list[Parts]:
        """The record's entries, as `Parts`: `write` encodes them without building the objects."""
        data, rid = mapped.record.data, mapped.record.id
        if stream == "invoices":
            parts = invoice_parts(rid, data, mapped.tables, self.accounts, self.tz)
        elif stream == "transactions":
            statuses = tuple(self.settings.post_statuses)
            parts = transaction_parts(rid, data, mapped.tables, self.accounts, self.tz, statuses)
        else:
            return []
        for p in parts:
            if off := imbalance(p[6]):  # unreachable by construction; never write an unbalanced entry
                raise EntryError(f"entry does not balance: {off}")
        return parts

    def flush(self) -> None:
        # Entries are durable in the store once put; the journal follows at close and, in a
        # long run, when its clock says (syncd/render_clock.py: a render's cost grows with the books).
        if self._clock.due():
            self.render()

    def close(self) -> None:
        self.render()

    def entries(self, in_books: frozenset[str] | None = None) -> list[Entry]:
        """Every entry held in the store, in journal order (less payments the books already hold)."""
        return sorted(self._current(in_books), key=Entry.sort_key)

    def _current(self, in_books: frozenset[str] | None = None) -> Iterator[Entry]:
        """The store's entries in store order, as the customers table says now, less those in the books."""
        customers = self._customers()
        if in_books is None:
            in_books = self._payments_in_books()
        for row in self._stored():
            if isinstance(row, str):
                _, f, block = rows.decode(row)
                e = rows.entry_of(f, block)
            else:
                e = Entry.from_row(row)
            if e.customer in customers:
                e = e.for_customer(customers[e.customer].row)
            if not _pushed_from_books(e.meta, in_books):
                yield e

    def _customers(self) -> dict[str, _Customer]:
        # Far fewer than entries: held in memory.
        return {row["id"]: _Customer(row) for row in self.context.outputs.rows(CUSTOMERS)}

    def _stored(self) -> Iterator[dict[str, Any] | str]:
        outputs = self.context.outputs
        return outputs.stored(ENTRIES) if isinstance(outputs, TextStore) else outputs.rows(ENTRIES)

    def _items(self, in_books: frozenset[str], facts: Facts) -> Iterator[Item]:
        """`_current`'s entries as the render's items, each added to `facts`.

        A row whose text holds (this version, this dialect, the customer's accounts and payee
        unchanged) gives its text as it is; any other is rendered again from its fields.
        """
        dialect = self.settings.dialect
        beancount = dialect == "beancount"
        mine = rows.tag(dialect)
        customers = self._customers()
        add, key_of, decode, text_of = facts.add_parts, rows.sort_key, rows.decode, rows.text_of
        for row in self._stored():
            if isinstance(row, str):
                tag, f, block = decode(row)
                if in_books and _pushed_from_books(((k, text_of(v, block)) for k, v in f.meta), in_books):
                    continue
                if tag == mine:
                    # `text_of` inline: a render reads every posting of every entry
                    postings = [
                        (a if isinstance(a := p[0], str) else block[a[0] : a[0] + a[1]], p[4], p[2])
                        for p in f.postings
                    ]
                    customer = customers.get(f.customer)
                    if customer is None or customer.keeps(text_of(f.payee, block), postings):
                        add(f.date, postings, [m[0] for m in f.meta])
                        fields = row[len(tag) : row.index("\n")] if beancount else ""
                        yield key_of(f.date, f.kind, f.object, f.object_id), block, fields
                        continue
                e = rows.entry_of(f, block)
            else:
                e = Entry.from_row(row)
            if e.customer in customers:
                e = e.for_customer(customers[e.customer].row)
            if _pushed_from_books(e.meta, in_books):
                continue
            facts.add(e)
            key = rows.entry_sort_key(e)
            if beancount:  # account names are final only once every entry is known
                yield key, "", rows.fields_json(e)
            else:
                yield key, entry_block(e, dialect, {}), ""

    def _payments_in_books(self) -> frozenset[str]:
        """External ids of the payments the hand-written books hold now."""
        return frozenset(p.external_id for p in self.external_payments() if isinstance(p, ExternalPayment))

    def render(self) -> bool:
        """Rebuild the journal from the store if anything changed; True when the file was replaced.

        The file's first line carries a stamp of everything besides the store that shapes it
        (dialect, the main journal's declarations, the payments in the books), so an unchanged
        store and stamp skip the work entirely.
        """
        outputs = self.context.outputs
        self._clock.begin()
        in_books = self._payments_in_books()
        stamp = self._stamp(in_books)
        if not outputs.is_dirty() and _first_line(self.path) == header(stamp):
            return False
        # Streamed through an external sort: a 300k-entry journal never sits in memory.
        facts = Facts()
        counted = [0]
        replaced = render_items(
            self.path,
            self._counted(self._items(in_books, facts), counted),
            facts,
            self.settings.dialect,
            declared=self.declared,
            stamp=stamp,
        )
        outputs.mark_clean()
        self._clock.end(counted[0])
        log.info("ledger.rendered", path=str(self.path), replaced=replaced)
        return replaced

    @staticmethod
    def _counted(items: Iterator[Item], counted: list[int]) -> Iterator[Item]:
        for item in items:
            counted[0] += 1
            yield item

    def _stamp(self, in_books: frozenset[str]) -> str:
        parts = [RENDER_VERSION, self.settings.dialect, *sorted(self.declared), "|", *sorted(in_books)]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]

    # -- push-back ---------------------------------------------------------------------
    def external_payments(self) -> Iterable[ExternalPayment | Rejection]:
        """Payments recorded by hand against the receivable in `payments_journal` (or `main_journal`)."""
        source = self.settings.payments_journal or self.settings.main_journal
        if source is None:
            return []
        receivable = self.settings.accounts.receivable
        alt = beancount_accounts([receivable])[receivable] if self.settings.dialect == "beancount" else None
        return list(books.read_payments(self._resolve(source), self.settings.dialect, receivable, alt))
