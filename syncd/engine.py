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

import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from syncd.config import Settings
from syncd.cursor import CursorWalk, WalkPage
from syncd.delivery import Delivery, StreamReport, Target, close_targets, open_targets, redeliver
from syncd.errors import SyncdError
from syncd.invoiced import InvoicedClient, Page
from syncd.mapping import MappingSet
from syncd.plugin import Record
from syncd.progress import Progress
from syncd.store import Store
from syncd.streams import STREAMS, Stream

log = structlog.get_logger(__name__)


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
class _Walker:
    stream: Stream
    partition: str
    walk: CursorWalk
    done: bool = False


_DONE = object()


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
        client.on_wait = self.progress.waiting  # rate-limit and retry waits show in the progress view
        client.pacer.reset_budget()  # the rate-limit budget is per run; the learnt pace is kept
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
    policy = RetryPolicy(
        attempts=conf.retry_attempts,
        budget=conf.retry_budget,
        rate_limit_budget=conf.rate_limit_budget,
        request_deadline=conf.request_deadline,
    )
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
