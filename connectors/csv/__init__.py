"""CSV connector: one file per mapping table (customers.csv, invoices.csv, ...).

Each file holds one row per record (or per line item) in its latest state. Rows are
kept in the checkpoint store and the files are rendered from there, atomically, when
the run ends (and every `render_every` seconds during a long run).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import structlog

from connectors.csv.files import write_atomic
from syncd.plugin import Connector, ConnectorSettings, MappedRecord, Rejection, TableSpec

log = structlog.get_logger(__name__)


class CsvSettings(ConnectorSettings):
    """`[connectors.csv]`"""

    enabled: bool = True
    directory: Path = Path("out")
    render_every: float = 30.0


class CsvConnector(Connector):
    """Writes mapped records to CSV files in `directory`."""

    name: ClassVar[str] = "csv"
    settings_model: ClassVar[type[ConnectorSettings]] = CsvSettings
    tables: ClassVar[dict[str, TableSpec]] = {}

    settings: CsvSettings

    def open(self) -> None:
        self.directory = self._directory()
        self.directory.mkdir(parents=True, exist_ok=True)
        self._last_render = time.monotonic()
        self._columns: dict[str, list[str]] = dict(getattr(self.context, "columns", {}) or {})

    def _directory(self) -> Path:
        directory = self.settings.directory
        return directory if directory.is_absolute() else self.context.state_dir / directory

    def write(self, stream: str, records: Sequence[MappedRecord]) -> list[Rejection]:
        outputs = self.context.outputs
        items = []
        for mapped in records:
            if mapped.record.deleted:
                outputs.delete(stream, mapped.record.id)
                continue
            for table, rows in mapped.tables.items():
                if rows and table not in self._columns:
                    self._columns[table] = list(rows[0].keys())
            items.append((stream, mapped.record.id, mapped.tables))
        if items:
            outputs.put_many(items)  # type: ignore[attr-defined]
        return []

    def flush(self) -> None:
        # Rows are durable in the store once put; files follow on a timer and at close.
        if time.monotonic() - self._last_render >= self.settings.render_every:
            self.render()

    def close(self) -> None:
        self.render()

    def render(self) -> None:
        """Rebuild every table's file from the store, if anything changed since the last time."""
        outputs = self.context.outputs
        self._last_render = time.monotonic()
        if not outputs.is_dirty():  # type: ignore[attr-defined]
            return
        for table, columns in sorted(self._columns.items()):
            count = write_atomic(self.directory / f"{table}.csv", columns, outputs.rows(table))
            log.info("csv.rendered", table=table, rows=count)
        outputs.mark_clean()  # type: ignore[attr-defined]
