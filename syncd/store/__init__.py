"""The checkpoint store: cursors, raw records, deliveries, output rows, runs, dead letters."""

from syncd.store.database import make_engine, redact_url
from syncd.store.store import ConnectorOutputs, Store, content_hash, dumps, loads, ref_id, text_hash

__all__ = ["ConnectorOutputs", "Store", "content_hash", "dumps", "loads", "make_engine", "redact_url", "ref_id", "text_hash"]
