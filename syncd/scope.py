"""A stream's scope (its `metadata[...]` and `filter[...]` query) is part of its checkpoint.

A cursor C means "every record *of this query* updated before C is delivered"; it says
nothing about records outside the query. So the scope a stream's cursors answer is kept
beside them (`Meta scope:<stream>`, canonical JSON) and compared, before any request, with
the configured one:

    narrowed (the new scope only adds conditions): no request. Every record of the new
        scope was in the old one, so it is stored and delivered; stored records the new
        scope excludes leave it (below); the scope switches at once, the cursor stays.
    widened / changed: a backfill. The new scope is read as a first pass of its own (date
        windows too) in cursor partitions `scope:<hash>` and `scope:<hash>|w:…`, which a
        killed run resumes; records already held are neither saved nor delivered again
        (content hashes). When it ends, stored records outside the new scope leave it, then
        cursor and scope switch in one transaction; until then the old scope stays recorded.

Equality conditions cannot express a complement ("region != emea"), so a widened scope is
read whole, once. Records that leave the scope are delivered as deletions to connectors
with `on_scope_exit = "remove"` (the default) and, once all took them, marked deleted in
the raw store (a failure before leaves them to the next run's exit), so neither a mapping
change nor a renamed customer brings them back; connectors with "keep" keep the rows they
hold, no longer updated.

Whether a stored record is in a scope is decided on its raw JSON: `metadata[k]` against the
object's `metadata` (a missing key does not match, as in the API), `filter[k]` against the
object's field `k` (true/false and numbers compared as the API's query strings). A record
lacking a filtered field cannot be judged and is kept (logged as `stream.scope_unknown`);
a stored copy is the record as last fetched, so a record that left the *old* scope by an
edit (and was never fetched again) is judged by its old values.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import structlog

from syncd.config import Settings
from syncd.delivery import Delivery, StreamReport, Target
from syncd.plugin import Record
from syncd.store import Store
from syncd.streams import STREAMS, Stream

log = structlog.get_logger(__name__)

PARTITION_PREFIX = "scope:"
_BATCH = 1000

Change = Literal["same", "narrowed", "widened", "changed"]


def meta_key(stream: str) -> str:
    """The Meta key holding the scope a stream's cursors answer."""
    return f"scope:{stream}"


@dataclass(frozen=True)
class Scope:
    """The conditions of one stream's listing query."""

    metadata: Mapping[str, str] = field(default_factory=dict)
    filter: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, stream: Stream) -> Scope:
        return cls(dict(stream.metadata), dict(stream.filter))

    @classmethod
    def loads(cls, text: str) -> Scope:
        data = json.loads(text)
        return cls(dict(data.get("metadata") or {}), dict(data.get("filter") or {}))

    def dumps(self) -> str:
        """Canonical JSON: equal scopes give equal text."""
        body = {"filter": dict(self.filter), "metadata": dict(self.metadata)}
        return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    def conditions(self) -> frozenset[tuple[str, str, str]]:
        return frozenset(
            [("metadata", k, v) for k, v in self.metadata.items()]
            + [("filter", k, v) for k, v in self.filter.items()]
        )

    def partition(self) -> str:
        """The cursor partition of a backfill of this scope."""
        return PARTITION_PREFIX + hashlib.sha256(self.dumps().encode()).hexdigest()[:16]

    def describe(self) -> str:
        """`metadata[region]=emea filter[payment_terms]=NET 30`, or `all` when unscoped."""
        parts = [f"{kind}[{k}]={v}" for kind, k, v in sorted(self.conditions())]
        return " ".join(parts) or "all"

    def matches(self, data: Mapping[str, Any]) -> bool | None:
        """Whether a raw record is in this scope; None when a filtered field is missing."""
        meta = data.get("metadata")
        meta = meta if isinstance(meta, Mapping) else {}
        for key, wanted in self.metadata.items():
            if key not in meta or not _equal(meta[key], wanted):
                return False
        unknown = False
        for key, wanted in self.filter.items():
            if key not in data:
                unknown = True
            elif not _equal(data[key], wanted):
                return False
        return None if unknown else True


def _equal(value: Any, wanted: str) -> bool:
    """A field's JSON value against a query string, as the API compares them."""
    if isinstance(value, Mapping):  # an expanded reference: compare its id
        value = value.get("id")
    if value is None:
        return False
    if isinstance(value, bool):
        return wanted.strip().lower() in (("true", "1") if value else ("false", "0"))
    return str(value) == wanted


def compare(old: Scope, new: Scope) -> Change:
    """How the new scope relates to the old one, as sets of records."""
    before, after = old.conditions(), new.conditions()
    if before == after:
        return "same"
    if before < after:
        return "narrowed"
    if after < before:
        return "widened"
    return "changed"


@dataclass(frozen=True)
class Partitions:
    """The cursor partitions a stream's walks use in a run: its own, or those of a backfill
    (`scope:<hash>`, `scope:<hash>|w:…`), which are planned, resumed and finished like a
    first pass's ("" or `w:…`)."""

    backfill: str = ""  # the backfill's partition; "" when the stream walks its own cursors

    def holds(self, partition: str) -> bool:
        if not self.backfill:
            return not partition.startswith(PARTITION_PREFIX)
        return partition == self.backfill or partition.startswith(self.backfill + "|")

    def own(self, cursors: Mapping[str, int]) -> dict[str, int]:
        """The cursors these walks use, named as a first pass names its own."""
        cut = len(self.backfill) + 1 if self.backfill else 0
        return {p[cut:]: v for p, v in cursors.items() if self.holds(p)}

    def partition(self, inner: str) -> str:
        """The stored name of a partition ("" or `w:…`) of these walks."""
        if not self.backfill:
            return inner
        return f"{self.backfill}|{inner}" if inner else self.backfill


def cursor_scope(settings: Settings, store: Store, stream: str, partition: str) -> str:
    """The scope a cursor row answers, for `syncd status`."""
    if stream not in STREAMS:  # the events cursors are not scoped
        return ""
    conf = getattr(settings.streams, stream)
    configured = Scope(dict(conf.metadata), dict(conf.filter))
    if partition.startswith(PARTITION_PREFIX):
        if Partitions(configured.partition()).holds(partition):
            return f"backfilling {configured.describe()}"
        return "abandoned backfill (dropped next run)"
    text = store.get_meta(meta_key(stream))
    if text is None:
        return "not recorded"
    recorded = Scope.loads(text)
    if compare(recorded, configured) == "same":
        return recorded.describe()
    return f"{recorded.describe()} (configured: {configured.describe()})"


class ScopeKeeper:
    """Checks each stream's scope before its walks are planned; finishes backfills."""

    def __init__(self, store: Store, targets: Sequence[Target]) -> None:
        self.store = store
        self.targets = targets
        self._pending: dict[str, Scope] = {}

    def check(self, stream: Stream) -> Partitions:
        """Before any request: the partitions to walk, a backfill's when the scope changed."""
        name, new = stream.name, Scope.of(stream)
        stored = self.store.get_meta(meta_key(name))
        cursors = self.store.cursors(name)
        backfills = [p for p in cursors if p.startswith(PARTITION_PREFIX)]
        main = [p for p in cursors if not p.startswith(PARTITION_PREFIX)]
        if stored is None:
            # A first pass, or a store from before scopes were recorded: the cursors are
            # taken to answer the scope configured now.
            if main:
                log.info("stream.scope_adopted", stream=name, scope=new.describe())
            self.store.drop_cursors(name, backfills)
            self.store.set_meta(meta_key(name), new.dumps())
            return Partitions()
        old = Scope.loads(stored)
        change = compare(old, new)
        backfill = change in ("widened", "changed") and bool(main)
        abandoned = [p for p in backfills if not (backfill and Partitions(new.partition()).holds(p))]
        self.store.drop_cursors(name, abandoned)
        if change == "same":
            if abandoned:  # an abandoned backfill may have delivered records of another scope
                self.leave(name, new)
            return Partitions()
        log.info("stream.scope_changed", stream=name, change=change, old=old.describe(), new=new.describe())
        if not backfill:
            # Narrowed: every record of the new scope is stored already. No cursor at all:
            # the first pass about to start reads the new scope whole.
            if change != "widened" or abandoned:
                self.leave(name, new)
            self.store.set_meta(meta_key(name), new.dumps())
            return Partitions()
        self._pending[name] = new
        plan = Partitions(new.partition())
        log.info("stream.scope_backfill", stream=name, partitions=sorted(plan.own(cursors)) or [""], scope=new.describe())
        return plan

    def finish(self, stream: str, partition: str, final: int, requests: int) -> bool:
        """A stream's walks all ended: switch to the backfilled scope. False if none was."""
        new = self._pending.get(stream)
        if new is None or not Partitions(new.partition()).holds(partition):
            return False
        # Before the switch: a kill in between re-runs the (nearly done) backfill, and
        # leaving the scope twice delivers nothing twice.
        self.leave(stream, new)
        self.store.finish_partitions(stream, final, meta={meta_key(stream): new.dumps()})
        del self._pending[stream]
        log.info("stream.scope_switched", stream=stream, scope=new.describe(), cursor=final, requests=requests)
        return True

    def leave(self, stream: str, scope: Scope) -> int:
        """Stored records outside `scope` leave it: removed per connector's `on_scope_exit`."""
        removers = [t for t in self.targets if _on_exit(t) == "remove"]
        delivery = Delivery(self.store, removers)
        report = StreamReport()
        out: list[str] = []
        unknown = 0
        for batch in self.store.iter_raw(stream, include_deleted=False, batch=_BATCH):
            for record in batch:
                verdict = scope.matches(record.data)
                if verdict is False:
                    out.append(record.id)
                unknown += verdict is None
        for start in range(0, len(out), _BATCH):
            chunk = out[start : start + _BATCH]
            delivery.deliver(stream, [Record(stream, rid, 0, {"id": rid}, deleted=True) for rid in chunk], report)
        if unknown:
            log.warning(
                "stream.scope_unknown",
                stream=stream,
                records=unknown,
                reason="a filtered field is missing from the stored record; kept",
            )
        if out:
            log.info(
                "stream.scope_exit",
                stream=stream,
                records=len(out),
                removed=dict(report.delivered),
                kept=sorted(t.name for t in self.targets if _on_exit(t) == "keep"),
            )
        return len(out)


def _on_exit(target: Target) -> str:
    return str(getattr(target.connector.settings, "on_scope_exit", "remove"))
