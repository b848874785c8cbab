"""CSV connector: one file per mapping table (customers.csv, invoices.csv, ...).

Each file holds one row per record (or per line item) in its latest state. Rows are
kept in the checkpoint store and the files are rendered from there, atomically, when
the run ends (and every `render_every` seconds during a long run).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import structlog

from connectors.csv.files import texts, write_atomic
from syncd.files import sweep_temp_files
from syncd.plugin import (
    Connector,
    ConnectorSettings,
    ExternalPayment,
    MappedRecord,
    Rejection,
    TableSpec,
)

log = structlog.get_logger(__name__)


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
        self._last_render = time.monotonic()
        self._render_took = 0.0
        # Columns come from the mapping, so a table is rendered (header included) even in a
        # run that wrote no row of it, e.g. one that only deleted records.
        self._columns: dict[str, list[str]] = {t: list(c) for t, c in self.context.columns.items()}

    def _directory(self) -> Path:
        directory = self.settings.directory
        return directory if directory.is_absolute() else self.context.state_dir / directory

    def write(self, stream: str, records: Sequence[MappedRecord]) -> list[Rejection]:
        outputs = self.context.outputs
        items: list[tuple[str, str, dict[str, list[dict[str, str]]]]] = []
        for mapped in records:
            # A deleted record is put with no rows: its rows go, in the page's one transaction.
            tables = {} if mapped.record.deleted else {
                t: [self._cells(t, row) for row in rows] for t, rows in mapped.tables.items()
            }
            items.append((stream, mapped.record.id, tables))
        if items:
            outputs.put_many(items)
        return []

    def _cells(self, table: str, row: Mapping[str, Any]) -> dict[str, str]:
        """A row as the text of its non-empty cells: rendering then only copies strings.

        `cell` of its own output is that output, so rows stored before (raw values) and
        after (texts) render alike.
        """
        return texts(self._columns.get(table) or row, row)

    def flush(self) -> None:
        # Rows are durable in the store once put; files follow on a timer and at close.
        # A render rewrites whole files, so its cost grows with the data: wait at least ten
        # times as long as the last one took, so that renders stay a small share of a long run.
        wait = max(self.settings.render_every, 10 * self._render_took)
        if time.monotonic() - self._last_render >= wait:
            self.render()

    def close(self) -> None:
        self.render()

    def render(self) -> None:
        """Rebuild every table's file from the store, if anything changed since the last time."""
        outputs = self.context.outputs
        self._last_render = time.monotonic()
        missing = any(not (self.directory / f"{table}.csv").exists() for table in self._columns)
        if not (missing or outputs.is_dirty()):
            return
        for table, columns in sorted(self._columns.items()):
            count = write_atomic(self.directory / f"{table}.csv", columns, outputs.rows(table))
            log.info("csv.rendered", table=table, rows=count)
        outputs.mark_clean()
        self._render_took = time.monotonic() - self._last_render

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
