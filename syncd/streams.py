"""The streams syncd pulls: each names its path, cursor field and query parameters."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Stream:
    """One Invoiced list endpoint read incrementally by `updated_at`."""

    name: str
    path: str
    object: str  # the `object` name used in event types, e.g. "invoice" in invoice.deleted
    windowable: bool = False  # accepts start_date/end_date (by document date)
    metadata: Mapping[str, str] = field(default_factory=dict)
    filter: Mapping[str, str] = field(default_factory=dict)

    def params(self) -> dict[str, str]:
        """Scope parameters: `metadata[k]=v` and `filter[k]=v`."""
        params = {f"metadata[{k}]": v for k, v in self.metadata.items()}
        params.update({f"filter[{k}]": v for k, v in self.filter.items()})
        return params


CUSTOMERS = Stream("customers", "/customers", "customer")
INVOICES = Stream("invoices", "/invoices", "invoice", windowable=True)
TRANSACTIONS = Stream("transactions", "/transactions", "transaction", windowable=True)
STREAMS: dict[str, Stream] = {s.name: s for s in (CUSTOMERS, INVOICES, TRANSACTIONS)}
