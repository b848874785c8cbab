"""CSV connector: one file per mapping table (customers.csv, invoices.csv, ...).

Each file holds one row per record (or per line item) in its latest state. Rows are
kept in the checkpoint store and the files are rendered from there, atomically, when
the run ends (and during a long run at least `render_every` seconds apart, further apart as the
files grow, never more than twenty `render_every`s old: syncd/render_clock.py).

A row is stored as its CSV line, written once: a render only concatenates lines. The line
starts with a tag of the columns it was written for (the layout, kept in the store under
that tag), so a row an earlier mapping wrote still renders by column name. Rows stored as
JSON (by older versions, or a line the store could not keep) render as they always did.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import structlog

from connectors.csv.files import line, split, texts, write_lines
from connectors.csv.linecode import LineWriter, line_writer
from syncd.files import sweep_temp_files
from syncd.plugin import (
    Connector,
    ConnectorError,
    ConnectorSettings,
    ExternalPayment,
    MappedRecord,
    OutputStore,
    Rejection,
    TableSpec,
)
from syncd.render_clock import RenderClock

log = structlog.get_logger(__name__)

TAG = 4  # characters of a layout tag: base64url, never "{" (a JSON row's first character)
# What a store's text column refuses (PostgreSQL: NUL; any UTF-8 codec: a lone surrogate).
_SURROGATE = re.compile("[\ud800-\udfff]")


@runtime_checkable
class LineStore(OutputStore, Protocol):
    """An OutputStore that keeps rows as text (syncd.store.ConnectorOutputs)."""

    def stored(self, table: str) -> Iterator[dict[str, Any] | str]: ...
    def remember(self, key: str, value: str) -> str: ...
    def recall(self, key: str) -> str | None: ...


def layout_tag(columns: Sequence[str]) -> str:
    """The tag of a column layout: a hash, so every process finds the same without asking."""
    digest = hashlib.sha256(json.dumps(list(columns)).encode()).digest()
    return base64.urlsafe_b64encode(digest)[:TAG].decode()


class CsvSettings(ConnectorSettings):
    """`[connectors.csv]`"""

    enabled: bool = True
    directory: Path = Path("out")
    render_every: float = 30.0
    # The payments inbox (a CSV file or a directory of them) pushed back to Invoiced;
    # columns in connectors/csv/inbox.py. Rejected rows go to `rejects` (default: beside it).
    inbox: Path | None = None
    rejects: Path | None = None


class CsvConnector(Connector):
    """Writes mapped records to CSV files in `directory`."""

    name: ClassVar[str] = "csv"
    local: ClassVar[bool] = True  # rows in the store only
    settings_model: ClassVar[type[ConnectorSettings]] = CsvSettings
    tables: ClassVar[dict[str, TableSpec]] = {}
    provides_payments: ClassVar[bool] = True

    settings: CsvSettings

    def open(self) -> None:
        self.directory = self._directory()
        self.directory.mkdir(parents=True, exist_ok=True)
        if removed := sweep_temp_files(self.directory, "*.csv"):
            log.info("csv.stale_temp_files_removed", files=[p.name for p in removed])
        self._clock = RenderClock(self.settings.render_every)
        # Columns come from the mapping, so a table is rendered (header included) even in a
        # run that wrote no row of it, e.g. one that only deleted records.
        self._columns: dict[str, list[str]] = {t: list(c) for t, c in self.context.columns.items()}
        # by table, on first use: its columns, its lines' tag, its compiled `line`
        self._layouts: dict[str, tuple[list[str], str | None, LineWriter]] = {}

    def _directory(self) -> Path:
        directory = self.settings.directory
        return directory if directory.is_absolute() else self.context.state_dir / directory

    def write(self, stream: str, records: Sequence[MappedRecord]) -> list[Rejection]:
        """Put each record's rows in the store, a page in one transaction.

        The store keeps a row as its tagged CSV line, else (a table without a tag, a line the
        store cannot keep: a NUL, a lone surrogate) as the texts of its cells: `cell` of its
        own output is that output, so stored texts render as the values did.
        """
        items: list[tuple[str, str, dict[str, list[Any]]]] = []
        layouts = self._layouts
        count = 0
        for mapped in records:
            record = mapped.record
            tables: dict[str, list[Any]] = {}
            # A deleted record is put with no rows: its rows go, in the page's one transaction.
            if not record.deleted:
                # (here, not in a method: a call per table costs as much as its one or two rows)
                for table, rows in mapped.tables.items():
                    columns, tag, write = layouts.get(table) or self._layout(table)
                    if tag is None:
                        kept: list[Any] = [texts(columns or row, row) for row in rows]
                    else:
                        kept = []
                        for row in rows:
                            text = write(row)
                            if "\x00" not in text and (text.isascii() or _SURROGATE.search(text) is None):
                                kept.append(tag + text)
                            else:
                                kept.append(texts(columns or row, row))
                    tables[table] = kept
                    count += len(kept)
            items.append((stream, record.id, tables))
        if items:
            self.context.outputs.put_many(items)
            self._clock.wrote(count)
        return []

    def _layout(self, table: str) -> tuple[list[str], str | None, LineWriter]:
        """A table's columns and the tag its lines carry (None: its rows are kept as JSON)."""
        columns = self._columns.get(table, [])
        tag = None
        outputs = self.context.outputs
        if columns and isinstance(outputs, LineStore):
            tag = layout_tag(columns)
            layout = json.dumps(columns)
            if outputs.remember(f"layout:{table}:{tag}", layout) != layout:
                tag = None  # another layout has this tag (a hash collision): JSON, as before
        entry = self._layouts[table] = (columns, tag, line_writer(columns))
        return entry

    def _lines(self, table: str) -> Iterator[str]:
        """The table's rows as CSV lines of its columns now, in the store's order."""
        outputs = self.context.outputs
        columns, tag, write = self._layouts.get(table) or self._layout(table)
        if not isinstance(outputs, LineStore):
            yield from (write(row) for row in outputs.rows(table))
            return
        earlier: dict[str, list[str]] = {}
        for row in outputs.stored(table):
            if not isinstance(row, str):
                yield write(row)
            elif tag is not None and row.startswith(tag):
                yield row[TAG:]
            else:  # written for other columns (an earlier mapping): cells by column name
                old = earlier.get(row[:TAG]) or self._earlier(table, row[:TAG], earlier)
                yield line(columns, dict(zip(old, split(row[TAG:]), strict=True)))

    def _earlier(self, table: str, tag: str, known: dict[str, list[str]]) -> list[str]:
        outputs = self.context.outputs
        layout = outputs.recall(f"layout:{table}:{tag}") if isinstance(outputs, LineStore) else None
        if layout is None:
            raise ConnectorError(
                f"rows of {table} have a column layout the store does not hold ({tag})", connector=self.name
            )
        known[tag] = json.loads(layout)
        return known[tag]

    def flush(self) -> None:
        # Rows are durable in the store once put; files follow at close and, in a long run,
        # when the clock says (syncd/render_clock.py: a render's cost grows with the data).
        if self._clock.due():
            self.render()

    def close(self) -> None:
        self.render()

    def render(self) -> None:
        """Rebuild every table's file from the store, if anything changed since the last time."""
        outputs = self.context.outputs
        self._clock.begin()
        missing = any(not (self.directory / f"{table}.csv").exists() for table in self._columns)
        if not (missing or outputs.is_dirty()):
            return
        rendered = 0
        for table, columns in sorted(self._columns.items()):
            count = write_lines(self.directory / f"{table}.csv", columns, self._lines(table))
            log.info("csv.rendered", table=table, rows=count)
            rendered += count
        outputs.mark_clean()
        self._clock.end(rendered)

    def external_payments(self) -> Iterable[ExternalPayment | Rejection]:
        """The payments of the inbox (none when `inbox` is not set); see connectors/csv/inbox.py."""
        from connectors.csv.inbox import Inbox

        if self.settings.inbox is None:
            return ()
        base = self.context.state_dir
        inbox = self.settings.inbox if self.settings.inbox.is_absolute() else base / self.settings.inbox
        rejects = self.settings.rejects
        if rejects is not None and not rejects.is_absolute():
            rejects = base / rejects
        return Inbox(inbox, source=self.context.name, rejects=rejects)
