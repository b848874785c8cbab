"""`syncd mappings check --against-store`: apply mappings to the stored records, count failures.

Nothing is written and nothing is fetched: each stored raw record of the mapping's streams
goes through `MappingSet.apply`, with references read from the store as in a sync.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from syncd.errors import SyncdError
from syncd.mapping import MappingSet
from syncd.plugin import MappedRecord
from syncd.store import Store
from syncd.streams import STREAMS

FIRST_REASONS = 5


@dataclass
class StreamCheck:
    """One connector's mapping over one stream's stored records."""

    records: int = 0
    failed: int = 0
    reasons: list[str] = field(default_factory=list)  # the first ones, in id order


def check_against_store(
    store: Store, mapping: MappingSet, check_record: Callable[[str, MappedRecord], str | None] | None = None
) -> dict[str, StreamCheck]:
    """How many stored records of each stream the mapping (then `check_record`, the connector's
    own check, see `Connector.check_record`) would refuse, with the first reasons."""
    out: dict[str, StreamCheck] = {}
    cache: dict[tuple[str, str], Mapping[str, Any] | None] = {}

    def resolve(stream: str, rid: str) -> Mapping[str, Any] | None:
        key = (stream, rid)
        if key not in cache:
            cache[key] = store.get_raw(stream, rid)
        return cache[key]

    for stream in STREAMS:
        if not mapping.tables_for(stream):
            continue
        check = out[stream] = StreamCheck()
        for batch in store.iter_raw(stream, include_deleted=False):
            for record in batch:
                check.records += 1
                try:
                    tables = mapping.apply(record, resolve)
                    reason = check_record(stream, MappedRecord(record, tables)) if check_record else None
                except (SyncdError, ValueError, TypeError, KeyError, ArithmeticError) as exc:
                    reason = str(exc)
                if reason is not None:
                    check.failed += 1
                    if len(check.reasons) < FIRST_REASONS:
                        check.reasons.append(reason)
    return out


def local_store_exists(url: str) -> bool:
    """True for a SQLite store whose file is there (checked by default); PostgreSQL: never."""
    prefix = "sqlite:///"
    return url.startswith(prefix) and Path(url[len(prefix) :]).is_file()
