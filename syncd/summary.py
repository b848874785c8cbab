"""The end-of-run summary of `syncd sync`: what changed, in words, then the table."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from syncd.delivery import StreamReport

if TYPE_CHECKING:  # rich is imported to print: the engine imports this module for `destinations`
    from rich.console import Console
    from rich.table import Table


class _Target(Protocol):
    name: str
    connector: Any
    mapping: Any


class SyncOutcome(Protocol):
    """What the summary reads of a `syncd.engine.SyncReport`."""

    streams: dict[str, StreamReport]
    redelivered: dict[str, int]
    duration: float
    destinations: dict[str, dict[str, str]]


def _shown(path: Path) -> str:
    """A path relative to the working directory when it lies below it."""
    try:
        return os.path.relpath(path) if path.resolve().is_relative_to(Path.cwd()) else str(path)
    except (OSError, ValueError):
        return str(path)


def destinations(targets: Sequence[_Target]) -> dict[str, dict[str, str]]:
    """Where each connector writes each stream: its files, else the connector's name."""
    out: dict[str, dict[str, str]] = {}
    for target in targets:
        directory = getattr(target.connector, "directory", None)
        path = getattr(target.connector, "path", None)
        for stream in target.streams():  # type: ignore[attr-defined]
            if isinstance(directory, Path):
                where = ", ".join(_shown(directory / f"{t}.csv") for t in target.mapping.tables_for(stream))
            elif isinstance(path, Path):
                where = _shown(path)
            else:
                where = target.name
            out.setdefault(target.name, {})[stream] = where or target.name
    return out


def sentences(report: SyncOutcome) -> list[str]:
    """One sentence per stream and connector that wrote, deleted or refused something."""
    lines = []
    for stream, r in report.streams.items():
        for connector in sorted(set(r.delivered) | set(r.rejected)):
            written, refused = r.delivered.get(connector, 0), r.rejected.get(connector, 0)
            where = report.destinations.get(connector, {}).get(stream, connector)
            line = f"{written:,} {stream} written to {where}"
            if refused:
                line += f", {refused:,} refused: see `syncd errors`"
            lines.append(line)
        if r.deleted:
            lines.append(f"{r.deleted:,} deleted {stream} removed")
    for connector, n in report.redelivered.items():
        if n:
            lines.append(f"{n:,} records re-delivered to {connector} after its mapping changed")
    if not lines:
        lines.append(f"nothing changed: {', '.join(report.streams) or 'every stream'} already up to date")
    return lines


def table(report: SyncOutcome) -> Table:
    """Counts per stream."""
    from rich.table import Table

    grid = Table(title=f"sync ({report.duration:.3f} s)")
    for col in ("stream", "fetched", "changed", "deleted", "delivered", "rejected", "requests"):
        grid.add_column(col)
    for name, r in report.streams.items():
        grid.add_row(
            name,
            f"{r.fetched:,}",
            f"{r.changed:,}",
            f"{r.deleted:,}",
            ", ".join(f"{k}={v:,}" for k, v in r.delivered.items()) or "0",
            ", ".join(f"{k}={v:,}" for k, v in r.rejected.items()) or "0",
            str(r.requests),
        )
    return grid


def print_summary(report: SyncOutcome, console: Console, *, logfile: Path | None = None) -> None:
    """Sentences first, then the table, then where the log went (once)."""
    from rich.markup import escape

    for line in sentences(report):
        console.print(escape(line), highlight=False, soft_wrap=True)
    console.print(table(report))
    if logfile is not None:
        console.print(f"log: {escape(_shown(logfile))}", style="dim", highlight=False, soft_wrap=True)
