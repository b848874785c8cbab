"""The checkpoint store: cursors, raw records, deliveries, output rows, runs, dead letters.

Its names are imported on first use: importing a light submodule (`syncd.store.schema`'s
constants, say) must not load SQLAlchemy, SQLModel and the store's machinery."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value  # once: later look-ups are plain attribute reads
    return value
