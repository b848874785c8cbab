"""`syncd mappings preview`: mapped rows next to the source values they came from."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.table import Table
from rich.text import Text

from syncd.errors import MappingError
from syncd.mapping.model import MappingSet
from syncd.mapping.schema import Resolve
from syncd.mapping.transforms import ApplyError, Env, to_text
from syncd.plugin import Record

MISSING = "∅"  # shown for a missing value, so it differs from empty text


def _no_resolve(stream: str, record_id: str) -> None:
    return None


def _cell(value: Any) -> str:
    text = to_text(value)
    return MISSING if text is None else str(text)


def render_preview(
    mapping: MappingSet,
    table: str,
    records: Sequence[Record],
    limit: int,
    resolve: Resolve | None = None,
) -> Table:
    """The rows `table` gets from up to `limit` records: each output column beside its source value.

    One line per output column, grouped by output row, so a wide table stays readable in
    a terminal. `resolve(stream, id)` reads referenced records (e.g. an invoice's customer)
    from the store; without it, references the API did not expand show as missing.
    """
    spec = mapping.tables[table]
    lookup = resolve or _no_resolve
    grid = Table(
        title=f"{mapping.path.name}: table {table!r} from stream {spec.stream!r}",
        caption=f"{MISSING} = missing value",
    )
    for name in ("record", "column", "output", "source value", "from"):
        grid.add_column(name, overflow="fold")
    shown = 0
    for record in records:
        if shown >= limit:
            break
        if record.stream != spec.stream:
            continue
        shown += 1
        label = f"{record.stream} {record.id}"
        skipped = spec.skipped_by(Env(record.data, None, lookup))
        if skipped is not None:
            grid.add_row(
                label, Text("(skipped)", style="yellow"), "", "", skipped.describe(), end_section=True
            )
            continue
        envs = spec.envs(record.data, lookup)
        if not envs:
            what = spec.rows.text if spec.rows is not None else "rows"
            grid.add_row(label, Text(f"(no {what})", style="yellow"), "", "", "", end_section=True)
        for index, env in enumerate(envs):
            row_label = label + (f" line {index + 1}" if spec.rows is not None else "")
            for position, column in enumerate(spec.columns):
                try:
                    source = _cell(column.source_value(env))
                    output = Text(_cell(column.value(env)))
                except (ApplyError, MappingError, ArithmeticError, ValueError, TypeError) as exc:
                    output = Text(f"error: {exc}", style="bold red")
                grid.add_row(
                    row_label if position == 0 else "",
                    column.name,
                    output,
                    Text(source, style="dim") if column.kind != "value" else "",
                    Text(column.describe(), style="dim"),
                    end_section=position == len(spec.columns) - 1,
                )
    return grid
