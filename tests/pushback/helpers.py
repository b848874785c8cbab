"""Helpers for push-back tests: inbox files, settings and config files for a sandbox."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from syncd.config import Settings
from syncd.pushback.outbox import Outbox, OutboxEntry
from syncd.store import Store

COLUMNS = ["external_id", "invoice", "customer", "amount", "currency", "date", "method", "reference", "notes"]
KEY = "syncd_external_id"


def write_inbox(path: Path, rows: Iterable[Mapping[str, Any]]) -> Path:
    """An inbox CSV with the documented columns."""
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({"date": "2024-06-01", "method": "check", **row})
    return path


def open_invoices(sandbox: Any, n: int, currency: str | None = "usd") -> list[dict[str, Any]]:
    """`n` invoices that can take a payment (open, with a balance), lowest id first."""
    found = [
        inv
        for inv in sandbox.data.list("invoices")
        if not inv["draft"]
        and not inv["closed"]
        and inv["status"] not in ("voided", "paid")
        and inv["balance"] > Decimal("1")
        and inv.get("number")
        and (currency is None or inv["currency"] == currency)
    ]
    assert len(found) >= n, f"sandbox has only {len(found)} open invoices"
    return found[:n]


def pushed(sandbox: Any, key: str = KEY) -> dict[str, list[dict[str, Any]]]:
    """Transactions in the sandbox carrying an external id, by external id."""
    out: dict[str, list[dict[str, Any]]] = {}
    for tx in sandbox.data.list("transactions"):
        ext = (tx.get("metadata") or {}).get(key)
        if ext is not None:
            out.setdefault(ext, []).append(tx)
    return out


def settings_data(sandbox: Any, store_url: str, tmp: Path, inbox: Path, **pushback: Any) -> dict[str, Any]:
    """Configuration (as TOML-ready data) pushing `inbox` to `sandbox`."""
    mapping = tmp / "csv-mapping.toml"  # the push never reads the mapping, the registry wants a file
    mapping.touch()
    return {
        "invoiced": {"base_url": sandbox.url, "api_key": sandbox.api_key, "retry_budget": 60.0},
        "store": {"url": store_url},
        "connectors": {
            "csv": {
                "enabled": True,
                "directory": str(tmp / "out"),
                "mapping": str(mapping),
                "inbox": str(inbox),
            }
        },
        "pushback": pushback,
    }


def settings_for(sandbox: Any, store_url: str, tmp: Path, inbox: Path, **pushback: Any) -> Settings:
    """Settings pushing `inbox` to `sandbox`."""
    return Settings(**settings_data(sandbox, store_url, tmp, inbox, **pushback))


def toml(data: Mapping[str, Any], prefix: Sequence[str] = ()) -> str:
    """A tiny TOML writer for flat sections of strings, numbers and booleans."""
    lines: list[str] = []
    tables = {k: v for k, v in data.items() if isinstance(v, Mapping)}
    for key, value in data.items():
        if not isinstance(value, Mapping):
            lines.append(f"{key} = {_scalar(value)}")
    for key, value in tables.items():
        path = [*prefix, key]
        scalars = {k: v for k, v in value.items() if not isinstance(v, Mapping)}
        if scalars or not value:
            lines.append(f"\n[{'.'.join(path)}]")
            lines.extend(f"{k} = {_scalar(v)}" for k, v in scalars.items())
        nested = {k: v for k, v in value.items() if isinstance(v, Mapping)}
        if nested:
            lines.append(toml(nested, path))
    return "\n".join(lines) + "\n"


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def outbox_entry(settings: Settings, ext: str) -> OutboxEntry:
    """The outbox entry of external payment `ext` (it must exist)."""
    store = Store.open(settings.store_url())
    try:
        entry = Outbox(store.engine).get(ext)
    finally:
        store.close()
    assert entry is not None
    return entry
