"""The checkpoint store: cursors, raw records, deliveries, output rows, runs, dead letters.

Its names are imported on first use: importing a light submodule (`syncd.store.schema`'s
constants, say) must not load SQLAlchemy, SQLModel and the store's machinery."""

from __future__ import annotations

from typing import TYPE_CHECKING

from syncd.lazy import exports

if TYPE_CHECKING:
    from syncd.store.database import make_engine, redact_url
    from syncd.store.store import ConnectorOutputs, Store, content_hash, dumps, loads, ref_id, text_hash

_WHERE = {
    "make_engine": "syncd.store.database",
    "redact_url": "syncd.store.database",
    **{
        name: "syncd.store.store"
        for name in ("ConnectorOutputs", "Store", "content_hash", "dumps", "loads", "ref_id", "text_hash")
    },
}
__all__ = ["ConnectorOutputs", "Store", "content_hash", "dumps", "loads", "make_engine", "redact_url", "ref_id", "text_hash"]


__getattr__ = exports(__name__, _WHERE)
