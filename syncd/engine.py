"""The pull loop: walks feed pages to one delivery thread, which owns every cursor write.

    fetcher threads (one per stream or date window)      delivery (calling thread)
    CursorWalk -> page ---------- queue ---------------> raw store -> mapping -> connectors
                                                          -> flush -> cursor advance

Fetching the next page overlaps with mapping and writing the current one; pages of one
query stay sequential. A cursor moves only after every enabled connector has flushed
the records it covers, so a kill at any point loses nothing, and a re-run rewrites
nothing that is already delivered.
"""

from __future__ import annotations

import hashlib
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from syncd import registry
from syncd.config import Settings
from syncd.cursor import CursorWalk, WalkPage
from syncd.errors import SyncdError
from syncd.invoiced import InvoicedClient, Page
from syncd.mapping import MappingSet
from syncd.plugin import Connector, MappedRecord, Record
from syncd.progress import Progress
from syncd.store import Store, dumps, ref_id, text_hash
from syncd.streams import STREAMS, Stream

log = structlog.get_logger(__name__)
DELETED_HASH = "deleted"


@dataclass
class StreamReport:
    """What one stream did in a run."""

    fetched: int = 0
    changed: int = 0
    deleted: int = 0
    delivered: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "fetched": self.fetched,
            "changed": self.changed,
            "deleted": self.deleted,
            "delivered": dict(self.delivered),
            "rejected": dict(self.rejected),
            "requests": self.requests,
            **({"error": self.error} if self.error else {}),
        }


@dataclass
class SyncReport:
    """The outcome of one `run_sync`."""

    streams: dict[str, StreamReport] = field(default_factory=dict)
    redelivered: dict[str, int] = field(default_factory=dict)
    duration: float = 0.0

    @property
    def ok(self) -> bool:
        return all(r.error is None for r in self.streams.values())

    def errors(self) -> list[str]:
        return [f"{name}: {r.error}" for name, r in self.streams.items() if r.error]

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "duration": round(self.duration, 3),
            "redelivered": dict(self.redelivered),
            "streams": {n: r.as_dict() for n, r in self.streams.items()},
        }


@dataclass
class Target:
    """An open connector with its mapping."""

    name: str
    connector: Connector
    mapping: MappingSet

    def streams(self) -> set[str]:
        return {s for s in STREAMS if self.mapping.tables_for(s)}

    def references(self, stream: str) -> list[str]:
        """Reference fields (customer, invoice) the mapping reads through for `stream`."""
        return sorted(f for f in self.mapping.expands(stream) if f in REFERENCES)


@dataclass
class _Walker:
    stream: Stream
    partition: str
    walk: CursorWalk
    done: bool = False
    final: int | None = None


_DONE = object()


# Fields by which a record refers to another stream's record. Mappings may read through them
# (`customer.name` on an invoice); the referred record is read from the store, never from an
# API `expand`, so that a renamed customer re-delivers its invoices with the new name.
REFERENCES = {"customer": "customers", "invoice": "invoices"}


class Delivery:
    """Maps and writes records to every target, recording what each now holds.

    What a target holds is keyed by a hash of the record *and* of every record its mapping
    reads through a reference, so an edited customer makes its invoices due again.
    """

    def __init__(self, store: Store, targets: Sequence[Target]) -> None:
        self.store = store
        self.targets = targets

    def deliver(
        self, stream: str, records: Sequence[Record], report: StreamReport, *, save: bool = True
    ) -> None:
        """Save changed raw records and hand each target the ones it does not hold yet."""
        if not records:
            return
        # Serialised once: the text gives the content hash and is what the store keeps.
        texts = {r.id: dumps(r.data) for r in records}
        hashes = {r.id: DELETED_HASH if r.deleted else text_hash(texts[r.id]) for r in records}
        changed: list[Record] = []
        if save:
            known = self.store.raw_hashes(stream, list(hashes))
            changed = [
                r for r in records if known.get(r.id) != hashes[r.id] and not (r.deleted and r.id not in known)
            ]
            if changed:
                self.store.save_raw([(r, hashes[r.id]) for r in changed], texts)
                report.changed += sum(1 for r in changed if not r.deleted)
        for target in self.targets:
            if stream in target.streams():
                self._deliver_to(target, stream, records, hashes, report)
        if changed:
            self.redeliver_dependents(stream, [r.id for r in changed])

    def catch_up_dependents(self) -> None:
        """Finish re-deliveries of dependents that a killed run left due."""
        for stream in sorted(set(REFERENCES.values())):
            while ids := self.store.dependents_due(stream):
                self.redeliver_dependents(stream, ids)

    def _deliver_to(
        self,
        target: Target,
        stream: str,
        records: Sequence[Record],
        hashes: Mapping[str, str],
        report: StreamReport,
    ) -> None:
        refs = target.references(stream)
        referred = self._referred(stream, records, refs)
        versions = {
            r.id: hashes[r.id] if r.deleted or not refs else _versioned(hashes[r.id], r, refs, referred)
            for r in records
        }
        held = self.store.delivered_hashes(target.name, stream, list(versions))
        todo = [r for r in records if held.get(r.id) != versions[r.id] and not (r.deleted and r.id not in held)]
        if not todo:
            return
        # Referred ids not in the store are remembered as None: no query per miss.
        data = {
            (REFERENCES[f], rid): hit[1] if hit else None for f in refs for rid, hit in referred[f].items()
        }

        def resolve(ref_stream: str, rid: str) -> Mapping[str, Any] | None:
            key = (ref_stream, rid)
            return data[key] if key in data else self.store.get_raw(ref_stream, rid)

        mapped, rejected = [], []
        for record in todo:
            try:
                tables = {} if record.deleted else target.mapping.apply(record, resolve)
            except (SyncdError, ValueError, TypeError, KeyError, ArithmeticError) as exc:
                rejected.append((record.id, f"mapping failed: {exc}"))
                continue
            mapped.append(MappedRecord(record, tables))
        with structlog.contextvars.bound_contextvars(connector=target.name, stream=stream):
            refusals = target.connector.write(stream, mapped) if mapped else []
            target.connector.flush()
        rejected.extend((r.record_id, r.reason) for r in refusals)
        refused = {rid for rid, _ in rejected}
        done = [(r.id, versions[r.id]) for r in todo if r.id not in refused]
        self.store.commit_deliveries(target.name, stream, done, rejected)
        report.delivered[target.name] = report.delivered.get(target.name, 0) + len(done)
        if rejected:
            report.rejected[target.name] = report.rejected.get(target.name, 0) + len(rejected)
            for rid, reason in rejected:
                log.warning("record.rejected", connector=target.name, stream=stream, record_id=rid, reason=reason)

    def _referred(
        self, stream: str, records: Sequence[Record], refs: Sequence[str]
    ) -> dict[str, dict[str, tuple[str, dict[str, Any]] | None]]:
        """For each reference field: the referred records' (content hash, data) by id, None when
        not stored; one query each."""
        out: dict[str, dict[str, tuple[str, dict[str, Any]] | None]] = {}
        for field_name in refs:
            ids = {rid for r in records if not r.deleted and (rid := ref_id(r.data, field_name))}
            found = self.store.get_raw_many(REFERENCES[field_name], ids)
            out[field_name] = {rid: found.get(rid) for rid in ids}
        return out

    def redeliver_dependents(self, stream: str, ids: Sequence[str]) -> None:
        """Re-deliver stored records that read `stream`'s changed records through a reference."""
        for field_name, referred_stream in REFERENCES.items():
            if referred_stream != stream:
                continue
            for dependent in STREAMS:
                for target in self.targets:
                    if field_name not in target.references(dependent):
                        continue
                    # The stored hash is `content_hash` of the stored data: no need to encode it again.
                    hashed = self.store.raw_referring_hashed(dependent, field_name, ids)
                    records = [record for record, _ in hashed]
                    scratch = StreamReport()
                    self._deliver_to(target, dependent, records, {r.id: h for r, h in hashed}, scratch)
                    if scratch.delivered:
                        log.info(
                            "dependents.redelivered",
                            connector=target.name,
                            stream=dependent,
                            because=stream,
                            records=scratch.delivered.get(target.name, 0),
                        )
        self.store.clear_dependents_due(stream, ids)


def _versioned(
    own: str,
    record: Record,
    refs: Sequence[str],
    referred: Mapping[str, Mapping[str, tuple[str, Any] | None]],
) -> str:
    """The record's hash combined with those of the records its mapping reads through references."""
    parts = [own]
    for field_name in refs:
        found = referred[field_name].get(ref_id(record.data, field_name) or "")
        parts.append(f"{field_name}={found[0] if found else '-'}")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]


class SyncRun:
    """One pass over the enabled streams."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        client: InvoicedClient,
        targets: Sequence[Target],
        *,
        progress: Progress | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.client = client
        self.targets = targets
        self.delivery = Delivery(store, targets)
        self.progress = progress or Progress(enabled=False)
        self.stop = stop or threading.Event()
        self.report = SyncReport()

    # -- planning -------------------------------------------------------------------
    def _stream(self, name: str) -> Stream:
        conf = self.settings.streams.enabled()[name]
        base = STREAMS[name]
        return Stream(base.name, base.path, base.object, base.windowable, conf.metadata, conf.filter)

    def _fetcher(self, path: str) -> Callable[[Mapping[str, str], str | None], Page]:
        def fetch(params: Mapping[str, str], next_url: str | None) -> Page:
            return self.client.get_page(next_url or path, None if next_url else params)

        return fetch

    def _windows(
        self, stream: Stream, params: Mapping[str, str], count: int
    ) -> list[tuple[str, dict[str, str]]]:
        """Split a first full pass into date windows that together cover every date."""
        if count <= 1 or not stream.windowable:
            return [("", {})]
        first = self.client.get_page(stream.path, {**params, "sort": "date asc", "per_page": "1"}).items
        last = self.client.get_page(stream.path, {**params, "sort": "date desc", "per_page": "1"}).items
        if not first or not last or first[0].get("date") is None or last[0].get("date") is None:
            return [("", {})]
        low, high = int(first[0]["date"]), int(last[0]["date"])
        if high - low < count:
            return [("", {})]
        step = (high - low) // count
        edges = [low + step * i for i in range(1, count)]
        windows = []
        for i in range(count):
            scope: dict[str, str] = {}
            if i > 0:
                scope["start_date"] = str(edges[i - 1])
            if i < count - 1:
                scope["end_date"] = str(edges[i] - 1)
            windows.append((f"w:{scope.get('start_date', '')}:{scope.get('end_date', '')}", scope))
        return windows

    def _plan(self, name: str, full: bool) -> list[_Walker]:
        stream = self._stream(name)
        params = stream.params()
        if full:
            self.store.reset_stream(name)
        cursors = self.store.cursors(name)
        per_page = self.settings.invoiced.per_page
        fetch = self._fetcher(stream.path)
        if "" in cursors and len(cursors) == 1:
            return [_Walker(stream, "", CursorWalk(fetch, params, cursors[""], per_page))]
        windows = [(p, _scope_of(p)) for p in cursors if p] or self._windows(
            stream, params, self.settings.streams.enabled()[name].windows
        )
        start = cursors.get("", 0)
        walkers = []
        for partition, scope in windows:
            begin = cursors.get(partition, start)
            if partition:
                self.store.set_cursor(name, partition, begin)
            walkers.append(
                _Walker(stream, partition, CursorWalk(fetch, {**params, **scope}, begin, per_page))
            )
        return walkers

    # -- running --------------------------------------------------------------------
    def _run_walk(self, walker: _Walker, out: queue.Queue[tuple[_Walker, Any]]) -> None:
        try:
            for page in walker.walk:
                out.put((walker, page))
                if self.stop.is_set():
                    out.put((walker, InterruptedError("stopped")))
                    return
            out.put((walker, _DONE))
        except BaseException as exc:
            out.put((walker, exc))

    def run(self, streams: Sequence[str], *, full: bool = False) -> SyncReport:
        started = time.monotonic()
        for name in streams:
            self.report.streams[name] = StreamReport()
        self.report.redelivered = redeliver(self.store, self.targets, self.delivery)
        self.delivery.catch_up_dependents()
        walkers: list[_Walker] = []
        for name in streams:
            try:
                walkers.extend(self._plan(name, full))
            except SyncdError as exc:
                self.report.streams[name].error = str(exc)
        events_from: int | None = None
        if walkers:  # a re-delivery-only run asks Invoiced nothing
            try:
                # Taken before any page is read: a record deleted after we read it must be
                # among the deletions this run applies.
                events_from = self._events_start({w.stream.name for w in walkers})
            except SyncdError as exc:
                log.error("events.failed", error=str(exc))
        # Streams run concurrently. A record that arrives before what it names (an invoice
        # before its customer) is delivered again when that arrives (references, above).
        self._walk_all(walkers)
        self._apply_deletions(events_from, walkers)
        self._finish(walkers)
        self.report.duration = time.monotonic() - started
        return self.report

    def _walk_all(self, walkers: Sequence[_Walker]) -> None:
        """Fetch every walk in its own thread; deliver their pages here, one at a time."""
        if not walkers:
            return
        out: queue.Queue[tuple[_Walker, Any]] = queue.Queue(maxsize=2 * max(1, len(walkers)))
        threads = [
            threading.Thread(
                target=self._run_walk, args=(w, out), name=f"walk-{w.stream.name}{w.partition}", daemon=True
            )
            for w in walkers
        ]
        for thread in threads:
            thread.start()
        self._drain(walkers, out)
        for thread in threads:
            thread.join()

    def _drain(self, walkers: Sequence[_Walker], out: queue.Queue[tuple[_Walker, Any]]) -> None:
        pending = len(walkers)
        while pending:
            walker, item = out.get()
            report = self.report.streams[walker.stream.name]
            if item is _DONE:
                walker.done = True
                pending -= 1
            elif isinstance(item, BaseException):
                pending -= 1
                report.error = report.error or _describe(item)
                log.error(
                    "stream.failed",
                    stream=walker.stream.name,
                    partition=walker.partition,
                    error=_describe(item),
                )
            elif report.error is None:
                self._deliver_page(walker, item, report)

    def _deliver_page(self, walker: _Walker, page: WalkPage, report: StreamReport) -> None:
        name = walker.stream.name
        records = _records(name, page.items)
        report.fetched += len(page.items)
        try:
            self.delivery.deliver(name, records, report)
        except SyncdError as exc:
            report.error = str(exc)
            log.error("delivery.failed", stream=name, error=str(exc))
            return
        self.store.set_cursor(name, walker.partition, page.checkpoint)
        self.progress.advance(name, len(page.items))

    def _events_start(self, names: set[str]) -> int:
        """Where this run's read of deletion events starts (server clock).

        Each stream keeps its own events cursor: a run of customers alone must not move
        past the invoice deletions that only a run of invoices applies.
        """
        cursors = self.store.cursors("events")
        known = [cursors[n] for n in names if n in cursors]
        if len(known) == len(names):
            return min(known)
        # A stream's first run: deletions before now concern records it never had. Start
        # at the server's clock, taken before any page of this run is read.
        page = self.client.get_page("/events", {"per_page": "1"})
        now = page.server_time or int(time.time())
        return min([*known, now])

    def _apply_deletions(self, since: int | None, walkers: Sequence[_Walker]) -> None:
        """Read deletion events since the events cursor; deliver them; tell the walks."""
        names = {w.stream.name for w in walkers}
        if not names:
            return
        if since is None:
            for name in names:
                self.report.streams[name].error = self.report.streams[name].error or "events unavailable"
            return
        objects = {STREAMS[n].object: n for n in names}
        try:
            latest, deleted = self._read_deletions(since, objects)
        except SyncdError as exc:
            for name in names:
                self.report.streams[name].error = self.report.streams[name].error or f"events: {exc}"
            return
        for name, ids in deleted.items():
            for walker in walkers:
                if walker.stream.name == name:
                    walker.walk.note_deleted(ids)
            records = [Record(name, rid, 0, {"id": rid}, deleted=True) for rid in sorted(ids)]
            report = self.report.streams[name]
            before = dict(report.delivered)
            self.delivery.deliver(name, records, report)
            report.deleted += sum(report.delivered.values()) - sum(before.values())
        for name in names:
            self.store.set_cursor("events", name, latest)

    def _read_deletions(self, since: int, objects: Mapping[str, str]) -> tuple[int, dict[str, set[str]]]:
        deleted: dict[str, set[str]] = {}
        latest = since
        params = {"start_date": str(max(since - 1, 0)), "per_page": "100"}
        for page in self.client.iter_pages("/events", params):
            for event in page.items:
                latest = max(latest, int(event.get("timestamp") or 0))
                obj, _, action = str(event.get("type", "")).partition(".")
                if action == "deleted" and obj in objects:
                    subject = (event.get("data") or {}).get("object") or {}
                    if "id" in subject:
                        deleted.setdefault(objects[obj], set()).add(str(subject["id"]))
        # Re-reading the last second next time is harmless: deletes are idempotent.
        return latest, deleted

    def _finish(self, walkers: Sequence[_Walker]) -> None:
        by_stream: dict[str, list[_Walker]] = {}
        for walker in walkers:
            by_stream.setdefault(walker.stream.name, []).append(walker)
        for name, group in by_stream.items():
            report = self.report.streams[name]
            report.requests += sum(w.walk.requests for w in group)
            if report.error is not None or not all(w.done for w in group):
                continue
            final = min(w.walk.final_checkpoint() for w in group)
            if len(group) == 1 and group[0].partition == "":
                self.store.set_cursor(name, "", final)
            else:
                self.store.finish_partitions(name, final)
            log.info("stream.synced", stream=name, cursor=final, **report.as_dict())


def redeliver(store: Store, targets: Sequence[Target], delivery: Delivery) -> dict[str, int]:
    """Re-deliver stored records to connectors whose mapping changed, and retry dead letters.

    Nothing is fetched: the raw records in the store are mapped again. Other connectors
    are not touched.
    """
    counts: dict[str, int] = {}
    for target in targets:
        key = f"mapping:{target.name}"
        fingerprint = target.mapping.fingerprint
        if store.get_meta(key) == fingerprint:
            continue
        streams = sorted(target.streams())
        store.forget_deliveries(target.name)
        only = Delivery(store, [target])
        total = 0
        for stream in streams:
            report = StreamReport()
            for batch in store.iter_raw(stream, include_deleted=False):
                only.deliver(stream, batch, report, save=False)
            total += report.delivered.get(target.name, 0)
        store.set_meta(key, fingerprint)
        counts[target.name] = total
        if total:
            log.info("mapping.redelivered", connector=target.name, records=total)
    return counts


def _records(stream: str, items: Sequence[dict[str, Any]]) -> list[Record]:
    latest: dict[str, Record] = {}
    for item in items:
        rid = str(item["id"])
        latest[rid] = Record(stream, rid, int(item["updated_at"]), item)
    return list(latest.values())


def _scope_of(partition: str) -> dict[str, str]:
    _, start, end = partition.split(":")
    scope = {}
    if start:
        scope["start_date"] = start
    if end:
        scope["end_date"] = end
    return scope


def _describe(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, SyncdError) else f"{exc.__class__.__name__}: {exc}"


def open_targets(
    settings: Settings, store: Store, mappings: Mapping[str, MappingSet] | None = None
) -> list[Target]:
    """Build and open every enabled connector with its mapping (loaded now unless given)."""
    specs = registry.configured(settings)
    if mappings is None or any(spec.name not in mappings for spec in specs):
        mappings = registry.load_mappings(specs)
    targets = []
    for spec in specs:
        connector = registry.build(spec, store, settings, mappings[spec.name])
        connector.open()
        targets.append(Target(spec.name, connector, mappings[spec.name]))
    return targets


def close_targets(targets: Sequence[Target]) -> None:
    for target in targets:
        with structlog.contextvars.bound_contextvars(connector=target.name):
            target.connector.close()


def run_sync(
    settings: Settings,
    *,
    streams: Sequence[str] | None = None,
    full: bool = False,
    progress: bool = False,
    client: InvoicedClient | None = None,
    store: Store | None = None,
    stop: threading.Event | None = None,
    mappings: Mapping[str, MappingSet] | None = None,
) -> SyncReport:
    """Run every enabled stream (or `streams`) once; returns what happened.

    `mappings` (by connector name) lets a daemon keep using the last valid mapping files.
    """
    enabled = settings.streams.enabled()
    names = [n for n in (list(enabled) if streams is None else streams) if n in enabled]
    unknown = [n for n in (streams or []) if n not in STREAMS]
    if unknown:
        raise SyncdError(f"unknown stream {unknown[0]!r}; streams: {', '.join(STREAMS)}")
    own_store = store is None
    store = store or Store.open(settings.store_url())
    own_client = client is None
    client = client or connect(settings)
    run_id = store.start_run("sync")
    targets: list[Target] = []
    try:
        targets = open_targets(settings, store, mappings)
        with Progress(enabled=progress) as bar, structlog.contextvars.bound_contextvars(run_id=run_id):
            report = SyncRun(settings, store, client, targets, progress=bar, stop=stop).run(names, full=full)
        close_targets(targets)
        store.finish_run(
            run_id, "ok" if report.ok else "failed", report.as_dict(), "; ".join(report.errors()) or None
        )
        return report
    except BaseException as exc:
        store.finish_run(run_id, "failed", {}, _describe(exc))
        raise
    finally:
        if own_client:
            client.close()
        if own_store:
            store.close()


def connect(settings: Settings) -> InvoicedClient:
    """An Invoiced client from the configuration."""
    from syncd.invoiced import RetryPolicy

    conf = settings.invoiced
    policy = RetryPolicy(attempts=conf.retry_attempts, budget=conf.retry_budget)
    return InvoicedClient.connect(
        conf.base_url,
        conf.api_key.get_secret_value(),
        timeout=conf.timeout,
        policy=policy,
        max_connections=conf.max_connections,
    )


def iter_records(store: Store, stream: str, limit: int) -> Iterator[Record]:
    """Up to `limit` stored records of a stream (for previews)."""
    count = 0
    for batch in store.iter_raw(stream, include_deleted=False, batch=min(limit, 1000)):
        for record in batch:
            yield record
            count += 1
            if count >= limit:
                return
