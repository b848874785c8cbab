"""The small, stable surface that connector authors import.

A connector receives records that the engine pulled from Invoiced and already mapped
through the connector's mapping file, and makes them durable in its destination:

    open() -> write(stream, records) ... -> flush() -> ... -> close()

`flush()` returns only once everything written so far is durable: the engine advances
a stream's cursor after every enabled connector has flushed the records it covers.
File connectors (CSV, ledger) keep their rows in the checkpoint store through
`ConnectorContext.outputs` and render their files from there, so a crash never leaves
half a file and a re-run never appends a twin.
"""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol

from pydantic import BaseModel, ConfigDict

from syncd.errors import ConfigError, ConnectorError, MappingError, PaymentError, SyncdError

__all__ = [
    "ConfigError",
    "Connector",
    "ConnectorContext",
    "ConnectorError",
    "ConnectorSettings",
    "ExternalPayment",
    "MappedRecord",
    "MappingError",
    "OutputStore",
    "PartialRejection",
    "PaymentError",
    "Record",
    "Rejection",
    "SyncdError",
    "TableSpec",
]

STREAMS = ("customers", "invoices", "transactions")


@dataclass(frozen=True, slots=True)
class Record:
    """One Invoiced object as pulled: `data` is the raw API object, money as Decimal.

    `data` is shared with every connector (and the store's cache): read it, never change it.
    """

    stream: str
    id: str
    updated_at: int
    data: Mapping[str, Any]
    deleted: bool = False


@dataclass(frozen=True, slots=True)
class MappedRecord:
    """A record plus the rows its connector's mapping made of it, per output table.

    A table missing from `tables` (or mapped to no rows) means the record has no rows
    there now, e.g. a draft invoice that a mapping filter skips: the connector removes
    whatever it had delivered for this record in that table.
    """

    record: Record
    tables: Mapping[str, Sequence[Mapping[str, Any]]]


@dataclass(frozen=True, slots=True)
class Rejection:
    """A record (or payment) a connector refuses, with the reason: goes to dead letters."""

    stream: str
    record_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class PartialRejection(Rejection):
    """A refused record of which something was written (a company, not its contact).

    It goes to dead letters like any refusal, but the target counts as holding it, so
    that deleting the record later reaches the connector (which removes what it wrote).
    """


@dataclass(frozen=True, slots=True)
class TableSpec:
    """An output table a connector understands: its source stream and required fields."""

    stream: str
    required: frozenset[str] = frozenset()
    description: str = ""


@dataclass(frozen=True, slots=True)
class ExternalPayment:
    """A payment recorded outside Invoiced (a check, a wire, a bank deposit).

    `external_id` is stable across runs: the same payment read again has the same id.
    `origin` says where it was read, e.g. `inbox/payments.csv:12`.
    """

    external_id: str
    source: str
    invoice: str
    amount: Decimal
    currency: str
    date: dt.date
    method: str = "other"
    customer: str | None = None
    reference: str | None = None
    notes: str | None = None
    origin: str = ""
    extra: Mapping[str, str] = field(default_factory=dict)


class OutputStore(Protocol):
    """Rows a connector keeps in the checkpoint store, keyed by the record they came from."""

    def put(self, stream: str, record_id: str, tables: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
        """Replace every row this connector holds for the record with `tables`."""

    def put_many(self, items: Sequence[tuple[str, str, Mapping[str, Sequence[Mapping[str, Any]]]]]) -> None:
        """`put` for many (stream, record_id, tables) at once, in one transaction."""

    def delete(self, stream: str, record_id: str) -> None:
        """Remove every row this connector holds for the record."""

    def rows(self, table: str) -> Iterator[dict[str, Any]]:
        """Yield the rows of one table in a stable order (by record id, then row)."""

    def is_dirty(self) -> bool:
        """True when rows changed since the connector last rendered its files."""

    def mark_clean(self) -> None:
        """Say that the connector's files now reflect every row."""


@dataclass(slots=True)
class ConnectorContext:
    """What the engine hands a connector: its name and its slice of the store."""

    name: str
    outputs: OutputStore
    state_dir: Path = Path(".")
    columns: Mapping[str, Sequence[str]] = field(
        default_factory=dict
    )  # output columns per table, mapping order
    # columns the mapping declares `write = "if_empty"`, per table (for targets that can read)
    fill_only: Mapping[str, Sequence[str]] = field(default_factory=dict)


class ConnectorSettings(BaseModel):
    """Settings every connector has; a connector subclasses this with its own keys."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    mapping: Path | None = None
    # Records that leave a stream's scope (a narrowed metadata/filter) are deleted here, or kept.
    on_scope_exit: Literal["remove", "keep"] = "remove"


class Connector(ABC):
    """Base class of every connector; registered in the `syncd.connectors` entry-point group."""

    name: ClassVar[str]
    settings_model: ClassVar[type[ConnectorSettings]] = ConnectorSettings
    tables: ClassVar[Mapping[str, TableSpec]] = {}
    provides_payments: ClassVar[bool] = False
    # True when `write` only puts rows in the store (context.outputs), with no request and no
    # slow work: its rows are then written in the delivered page's one store transaction,
    # and `flush` is called after that transaction commits.
    local: ClassVar[bool] = False

    def __init__(self, settings: ConnectorSettings, context: ConnectorContext) -> None:
        self.settings = settings
        self.context = context

    @classmethod
    def check_constant(
        cls, settings: ConnectorSettings, table: str, column: str, value: Any, *, prefix: bool = False
    ) -> str | None:
        """Why `write` would refuse every record whose `table.column` is `value`, else None.

        `syncd mappings check` asks this of each constant output of a mapping (a `value`, a
        value-table entry, a `fallback`, a `default`) and reports the answer at its
        file:line:column. `prefix`: `value` is only the literal start of a template, cut at
        its last `:` before the first placeholder.
        """
        return None

    @classmethod
    def check_record(cls, settings: ConnectorSettings, stream: str, record: MappedRecord) -> str | None:
        """Why `write` would refuse this mapped record, when that can be told without the
        destination (no I/O); None otherwise. Used by `syncd mappings check --against-store`."""
        return None

    def open(self) -> None:  # noqa: B027 - optional hook
        """Prepare the destination (check credentials, create folders)."""

    @abstractmethod
    def write(self, stream: str, records: Sequence[MappedRecord]) -> list[Rejection]:
        """Take a batch of mapped records of one stream; return those refused, with reasons.

        A connector that learns of per-record failures only from its destination (an API
        answering per input) sends here, so that it can return them.
        """

    @abstractmethod
    def flush(self) -> None:
        """Return only once everything written so far is durable."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources; file connectors render their files here."""

    def external_payments(self) -> Iterable[ExternalPayment | Rejection]:
        """Payments recorded in this destination, for the push-back (when provides_payments)."""
        return ()
