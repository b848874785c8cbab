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

import contextlib
import contextvars
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import structlog

from syncd.config import Settings
from syncd.cursor import CursorWalk, Resume, WalkPage
from syncd.deletions import Deletions
from syncd.delivery import Delivery, StreamReport, Target, close_targets, open_targets, redeliver
from syncd.delivery_order import DeliveryOrder
from syncd.errors import SyncdError
from syncd.failure import FAILURES, describe
from syncd.gctune import sync_collection
from syncd.invoiced import InvoicedClient, Page
from syncd.invoiced.contract import check_page
from syncd.mapping import MappingSet
from syncd.plugin import Record
from syncd.progress import Progress
from syncd.scope import ScopeKeeper
from syncd.store import Store
from syncd.store.lease import PULL, WAIT_HINT, holding
from syncd.store.pacing import share_pacing
from syncd.streams import STREAMS, Stream
from syncd.summary import destinations
from syncd.windows import balanced_edges

log = structlog.get_logger(__name__)


@dataclass
class SyncReport:
    """The outcome of one `run_sync`."""

    streams: dict[str, StreamReport] = field(default_factory=dict)
    redelivered: dict[str, int] = field(default_factory=dict)
    duration: float = 0.0
    # what the re-delivery after a mapping change did, by stream
    redelivery: dict[str, StreamReport] = field(default_factory=dict)
    destinations: dict[str, dict[str, str]] = field(default_factory=dict)  # connector -> stream -> where

    @property
    def ok(self) -> bool:
        return all(r.error is None for r in self.streams.values())

    def errors(self) -> list[str]:
        return [f"{name}: {r.error}" for name, r in self.streams.items() if r.error]

    def refused_all(self) -> list[str]:
        """Streams of which a connector refused every record it was given (see syncd.reconcile)."""
        from syncd.reconcile import refused_everything

        return refused_everything([*self.streams.items(), *self.redelivery.items()])

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "duration": round(self.duration, 3),
            "redelivered": dict(self.redelivered),
            "streams": {n: r.as_dict() for n, r in self.streams.items()},
            **(
                {"redelivery": {n: r.as_dict() for n, r in self.redelivery.items()}}
                if self.redelivery
                else {}
            ),
            **({"refused_all": refused} if (refused := self.refused_all()) else {}),
        }


# Pages of a walk fetched (or being fetched) and not yet delivered or held: the next page is
# fetched while one is delivered, and no further ahead, since a kill loses every page not yet
# delivered (a resumed run reads them again) and a faster fetch would only wait in the queue.
# A date window of a first pass fetches only once its page is delivered: its sibling windows'
# fetches overlap the delivery, and a killed first pass loses one page a window, not two.
LOOKAHEAD = 2
WINDOW_LOOKAHEAD = 1


@dataclass
class _Walker:
    stream: Stream
    partition: str
    walk: CursorWalk
    done: bool = False
    ahead: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(LOOKAHEAD))


# Builds a first pass's walks from its planned date windows (partition, scope).
_Finish = Callable[[list[tuple[str, dict[str, str]]]], list[_Walker]]


@dataclass
class _Plan:
    """A stream's walks (`walkers`), or, for a first pass in date windows, the planning of
    its windows (`windows`, requests only) and what builds the walks from them (`finish`)."""

    stream: Stream
    walkers: list[_Walker]
    windows: Callable[[], list[tuple[str, dict[str, str]]]] | None = None
    finish: _Finish | None = None


@dataclass(frozen=True)
class _Planned:
    """In the walks' queue: the planning of `name`'s date windows ended (its future follows)."""

    name: str


@dataclass
class _Planning:
    """Walks ready to start, and the streams whose windows are still being planned (what
    builds their walks from the windows, by stream)."""

    ready: list[_Walker]
    later: dict[str, _Finish]


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
        self.scopes = ScopeKeeper(store, targets)
        self.deletions = Deletions(store, client, settings.invoiced.per_page)
        self.progress = progress or Progress(enabled=False)
        client.on_wait = self.progress.waiting  # rate-limit and retry waits show in the progress view
        client.pacer.reset_budget()  # the rate-limit budget is per run; the learnt pace is kept
        self.stop = stop or threading.Event()
        self.report = SyncReport()
        self.events_from: int | None = None  # where this run's read of deletion events starts

    # -- planning -------------------------------------------------------------------
    def _stream(self, name: str) -> Stream:
        conf = self.settings.streams.enabled()[name]
        base = STREAMS[name]
        return Stream(base.name, base.path, base.object, base.windowable, conf.metadata, conf.filter)

    def _fetcher(self, path: str) -> Callable[[Mapping[str, str], str | None], Page]:
        def fetch(params: Mapping[str, str], next_url: str | None) -> Page:
            page = self.client.get_page(next_url or path, None if next_url else params)
            # Where pages enter: a page that breaks the contract fails the walk before any of it is used.
            page.items = check_page(path, page.items, page.server_time, depth=page.depth)
            return page

        return fetch

    def _probe(self, stream: Stream, params: Mapping[str, str]) -> tuple[list[dict[str, Any]], int | None]:
        """One `per_page=1` request: its record (checked like any page) and its X-Total-Count."""
        page = self.client.get_page(stream.path, {**params, "per_page": "1"})
        return check_page(stream.path, page.items, page.server_time, dated=True, depth=page.depth), page.total

    def _edge(self, stream: Stream, params: Mapping[str, str], sort: str) -> list[dict[str, Any]]:
        """The first record of the stream in `sort` order, checked like any page."""
        return self._probe(stream, {**params, "sort": sort})[0]

    def _windows(
        self, stream: Stream, params: Mapping[str, str], count: int
    ) -> list[tuple[str, dict[str, str]]]:
        """Split a first full pass into date windows that together cover every date and hold
        similar numbers of records (syncd.windows)."""
        if count <= 1 or not stream.windowable:
            return [("", {})]
        with ThreadPoolExecutor(1, thread_name_prefix="plan") as pool:  # both ends at once
            latest = pool.submit(contextvars.copy_context().run, self._edge, stream, params, "date desc")
            first, total = self._probe(stream, {**params, "sort": "date asc"})
            last = latest.result()
        if not first or not last or first[0].get("date") is None or last[0].get("date") is None:
            return [("", {})]
        low, high = int(first[0]["date"]), int(last[0]["date"])
        if high - low < count:
            return [("", {})]

        def count_before(date: int) -> int:
            found = self._probe(stream, {**params, "sort": "date asc", "end_date": str(date - 1)})[1]
            if found is None:
                raise SyncdError(f"GET {stream.path}: no X-Total-Count to plan date windows with")
            return found

        if total is None:
            step = (high - low) // count
            edges = [low + step * i for i in range(1, count)]
        else:
            edges = balanced_edges(count_before, low, high, total, count)
        if not edges:
            return [("", {})]
        windows = []
        for i in range(len(edges) + 1):
            scope: dict[str, str] = {}
            if i > 0:
                scope["start_date"] = str(edges[i - 1])
            if i < len(edges):
                scope["end_date"] = str(edges[i] - 1)
            windows.append((f"w:{scope.get('start_date', '')}:{scope.get('end_date', '')}", scope))
        return windows

    def _plan(self, name: str, full: bool) -> _Plan:
        """A stream's walks, or what is left to do once its date windows are planned."""
        stream = self._stream(name)
        params = stream.params()
        if full:
            self.store.reset_stream(name)
        # A changed scope is read as a first pass of its own, in partitions of its own.
        plan = self.scopes.check(stream)
        cursors = plan.own(self.store.cursors(name))
        per_page = self.settings.invoiced.per_page
        fetch = self._fetcher(stream.path)
        resumes = self.store.resume_points(name)

        def walk(partition: str, scope: Mapping[str, str], begin: int) -> CursorWalk:
            # A killed run's walk goes on where it stopped, watching what it deep-scanned (syncd.cursor).
            point = resumes.get(plan.partition(partition))
            resume = Resume(point[0], point[1]) if point is not None and min(point[1]) == begin else None
            watched = self.store.raw_updated_at(name, resume.seconds) if resume is not None else None
            return CursorWalk(fetch, {**params, **scope}, begin, per_page, resume=resume, watched=watched)

        if "" in cursors and len(cursors) == 1:
            return _Plan(stream, [_Walker(stream, plan.partition(""), walk("", {}, cursors[""]))])
        start = cursors.get("", 0)

        def finish(windows: list[tuple[str, dict[str, str]]]) -> list[_Walker]:
            walkers = []
            # Stored whole: a plan cut short by a kill would walk only the windows it names.
            self.store.set_cursors(name, {plan.partition(p): cursors.get(p, start) for p, _ in windows if p})
            for partition, scope in windows:
                begin = cursors.get(partition, start)
                walker = _Walker(stream, plan.partition(partition), walk(partition, scope, begin))
                if len(windows) > 1:
                    walker.ahead = threading.Semaphore(WINDOW_LOOKAHEAD)
                walkers.append(walker)
            return walkers

        stored = [(p, _scope_of(p)) for p in cursors if p]
        if stored:
            return _Plan(stream, finish(stored))
        count = self.settings.streams.enabled()[name].windows
        return _Plan(stream, [], lambda: self._windows(stream, params, count), finish)

    def _plan_all(self, streams: Sequence[str], full: bool, out: queue.Queue[tuple[Any, Any]]) -> _Planning:
        """Every stream's walks: those ready now, and the first passes whose date windows are
        being planned (one thread a stream: each stream's probes depend on one another).

        The events position is fixed here, while the windows are planned: their requests
        overlap. A planned stream's result reaches `out` as (`_Planned`, future), so the walks
        ready now (customers: no windows) start without waiting for any plan.
        """
        plans: list[_Plan] = []
        for name in streams:
            try:
                plans.append(self._plan(name, full))
            except FAILURES as exc:  # a scope exit's deletion can hit a full disk or a broken store
                self._fail(name, exc)
        waiting = {p.stream.name: p for p in plans if p.windows is not None}
        later: dict[str, _Finish] = {}
        # Not `with`: its exit waits for the plans, which the walks ready now must not.
        pool = ThreadPoolExecutor(max(1, len(waiting)), thread_name_prefix="plan")
        try:
            for name, plan in waiting.items():
                assert plan.windows is not None
                assert plan.finish is not None
                later[name] = plan.finish
                future = pool.submit(contextvars.copy_context().run, plan.windows)
                future.add_done_callback(_report_to(out, name))
            names = {p.stream.name for p in plans}
            if names:  # a re-delivery-only run asks Invoiced nothing
                # Stored before any page is delivered: a record deleted after we read it must be
                # among the deletions this run, or a later one, applies.
                self.events_from, failed = self.deletions.fix_start(names)
                for name, error in failed.items():
                    self.report.streams[name].error = error
        finally:
            pool.shutdown(wait=False)  # the plans go on; their results come through `out`
        ready = [w for p in plans if p.windows is None for w in p.walkers]
        return _Planning([w for w in ready if self.report.streams[w.stream.name].error is None], later)

    def _planned(
        self, name: str, future: Future[list[tuple[str, dict[str, str]]]], planning: _Planning
    ) -> list[_Walker]:
        """The walks of a stream whose windows were planned; none when the planning or the
        events position failed it."""
        finish = planning.later.pop(name)
        if self.report.streams[name].error is not None:
            return []
        try:
            return finish(future.result())
        except FAILURES as exc:
            self._fail(name, exc)
            return []

    def _fail(self, name: str, exc: BaseException) -> None:
        self.report.streams[name].error = describe(exc)
        log.error("stream.failed", stream=name, error=describe(exc))

    # -- running --------------------------------------------------------------------
    def _run_walk(self, walker: _Walker, out: queue.Queue[tuple[_Walker, Any]]) -> None:
        try:
            pages = iter(walker.walk)
            while True:
                walker.ahead.acquire()  # a slot for the page about to be fetched; see LOOKAHEAD
                page = next(pages, None)
                if page is None:
                    break
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
        self.report.redelivered = redeliver(self.store, self.targets, self.delivery, self.report.redelivery)
        self.delivery.catch_up_dependents()
        # Unbounded: each walk has at most LOOKAHEAD pages (and its end) in it.
        out: queue.Queue[tuple[Any, Any]] = queue.Queue()
        planning = self._plan_all(streams, full, out)
        events_from = self.events_from
        # Streams run concurrently. Pages of a stream that names another (an invoice its
        # customer) wait while that one is walked (DeliveryOrder); a record that still
        # arrives before what it names is delivered again when that arrives (references).
        walkers = self._walk_all(planning, out)
        self._apply_deletions(events_from, walkers)
        self._finish(walkers)
        self.report.duration = time.monotonic() - started
        return self.report

    def _walk_all(self, planning: _Planning, out: queue.Queue[tuple[Any, Any]]) -> list[_Walker]:
        """Fetch every walk in its own thread, starting each once its stream is planned;
        deliver their pages here, one at a time. Returns every walk that ran."""
        walkers: list[_Walker] = []
        threads: list[threading.Thread] = []

        def start(new: Sequence[_Walker]) -> None:
            # Each fetcher runs in a copy of the caller's context, so its log lines carry what
            # the caller bound (a worker's account and job, a daemon's job).
            for walker in new:
                thread = threading.Thread(
                    target=contextvars.copy_context().run,
                    args=(self._run_walk, walker, out),
                    name=f"walk-{walker.stream.name}{walker.partition}",
                    daemon=True,
                )
                thread.start()
                threads.append(thread)
            walkers.extend(new)

        start(planning.ready)
        self._drain(planning, out, start)
        for thread in threads:
            thread.join()
        return walkers

    def _drain(
        self,
        planning: _Planning,
        out: queue.Queue[tuple[Any, Any]],
        start: Callable[[Sequence[_Walker]], None],
    ) -> None:
        pending = len(planning.ready) + len(planning.later)
        order = DeliveryOrder(planning.ready, self.targets, planning=list(planning.later))
        owed: set[int] = set()  # held pages whose walks wait for their delivery to fetch on
        while pending:
            taken = out.get()
            if isinstance(taken[0], _Planned):
                new = self._planned(taken[0].name, taken[1], planning)
                pending += len(new) - 1
                order.planned(taken[0].name, len(new))
                start(new)
                work = deque(order.ready())  # a stream that failed to plan holds nothing back
            else:
                work = deque(order.take(*taken))
            if isinstance(taken[1], WalkPage) and not any(item is taken[1] for _, item in work):
                if order.over:
                    owed.add(id(taken[1]))  # too much held (DeliveryOrder): this walk pauses
                else:
                    taken[0].ahead.release()  # held back (DeliveryOrder): the walk may fetch on
            while work:
                walker, item = work.popleft()
                pending -= self._take(walker, item)
                if isinstance(item, WalkPage) and (item is taken[1] or id(item) in owed):
                    owed.discard(id(item))
                    walker.ahead.release()  # delivered: the walk may fetch another
                if walker.done or isinstance(item, BaseException):
                    order.finished(walker)
                    work.extend(order.ready())

    def _take(self, walker: _Walker, item: Any) -> int:
        """Deliver one item of a walk; 1 when it ends the walk."""
        report = self.report.streams[walker.stream.name]
        if item is _DONE:
            walker.done = True
            return 1
        if isinstance(item, BaseException):
            report.error = report.error or describe(item)
            log.error(
                "stream.failed",
                stream=walker.stream.name,
                partition=walker.partition,
                error=describe(item),
            )
            return 1
        if report.error is None:
            self._deliver_page(walker, item, report)
        return 0

    def _deliver_page(self, walker: _Walker, page: WalkPage, report: StreamReport) -> None:
        name = walker.stream.name
        records = _records(name, page.items)
        report.fetched += len(page.items)
        resume = None if page.resume is None else (page.resume.at, page.resume.seconds)

        def move_cursor() -> None:  # once everything the page covers is durable
            self.store.set_cursor(name, walker.partition, page.checkpoint, resume)

        try:
            self.delivery.deliver(name, records, report, then=move_cursor)
        except FAILURES as exc:  # ours, a full disk, a broken store: the stream stops, the cursor stays
            report.error = describe(exc)
            log.error("delivery.failed", stream=name, error=report.error)
            return
        self.progress.advance(
            name,
            len(page.items) if page.new is None else page.new,
            partition=walker.partition,
            expected=page.expected,
            written=report.delivered,
            refused=report.rejected,
        )

    def _apply_deletions(self, since: int | None, walkers: Sequence[_Walker]) -> None:
        """Read deletions since the events position; deliver them; tell the walks; move the position."""
        names = sorted({w.stream.name for w in walkers})
        if not names or since is None:
            return
        try:
            found = self.deletions.collect(since, names)
        except SyncdError as exc:
            log.error("events.failed", error=str(exc))
            for name in names:
                self.report.streams[name].error = self.report.streams[name].error or f"events: {exc}"
            return
        applied = []
        for name in names:
            ids = found.deleted.get(name, set())
            for walker in walkers:
                if walker.stream.name == name:
                    walker.walk.note_deleted(ids)
            records = [Record(name, rid, 0, {"id": rid}, deleted=True) for rid in sorted(ids)]
            report = self.report.streams[name]
            before = sum(report.delivered.values())
            try:
                self.delivery.deliver(name, records, report)
            except FAILURES as exc:  # as for a page: the stream stops, the events position stays
                report.error = report.error or describe(exc)
                log.error("delivery.failed", stream=name, error=describe(exc))
                continue
            report.deleted += sum(report.delivered.values()) - before
            applied.append(name)
        self.deletions.commit(found, applied)

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
            try:
                if len(group) == 1 and group[0].partition == "":
                    self.store.set_cursor(name, "", final)
                elif not self.scopes.finish(name, group[0].partition, final, report.requests):
                    self.store.finish_partitions(name, final)
            except FAILURES as exc:  # a scope exit's deletion or the store: this stream fails, not the run
                report.error = describe(exc)
                log.error("stream.failed", stream=name, error=report.error)
                continue
            log.info("stream.synced", stream=name, cursor=final, **report.as_dict())


def _report_to(out: queue.Queue[tuple[Any, Any]], name: str) -> Callable[[Future[Any]], None]:
    """A done-callback putting a plan's future in the walks' queue."""
    return lambda future: out.put((_Planned(name), future))


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


def run_sync(
    settings: Settings,
    *,
    streams: Sequence[str] | None = None,
    full: bool = False,
    progress: bool | Progress = False,
    client: InvoicedClient | None = None,
    store: Store | None = None,
    stop: threading.Event | None = None,
    mappings: Mapping[str, MappingSet] | None = None,
    wait: bool = False,
    holder: str | None = None,
) -> SyncReport:
    """Run every enabled stream (or `streams`) once; returns what happened.

    `mappings` (by connector name) lets a daemon keep using the last valid mapping files;
    `progress` is True for a live view of this run, or a view that outlives it (a daemon's).
    On its own store the run holds the store's pull lease (LeaseHeld, or waits with `wait`);
    a caller that passes `store` (the daemon) holds it itself. The run is logged as job
    `pull:<streams>` of `holder` (default `host:pid`).
    """
    with sync_collection():
        return _run_sync(
            settings,
            streams=streams,
            full=full,
            progress=progress,
            client=client,
            store=store,
            stop=stop,
            mappings=mappings,
            wait=wait,
            holder=holder,
        )


def _run_sync(
    settings: Settings,
    *,
    streams: Sequence[str] | None,
    full: bool,
    progress: bool | Progress,
    client: InvoicedClient | None,
    store: Store | None,
    stop: threading.Event | None,
    mappings: Mapping[str, MappingSet] | None,
    wait: bool,
    holder: str | None,
) -> SyncReport:
    enabled = settings.streams.enabled()
    names = [n for n in (list(enabled) if streams is None else streams) if n in enabled]
    unknown = [n for n in (streams or []) if n not in STREAMS]
    if unknown:
        raise SyncdError(f"unknown stream {unknown[0]!r}; streams: {', '.join(STREAMS)}")
    own_store = store is None
    store = store or Store.open(settings.store_url())
    lease = contextlib.ExitStack()
    if own_store:
        halt = stop = stop or threading.Event()
        lease.callback(store.close)
        try:
            # Losing the lease (another process took it over) stops the run at a page end.
            lease.enter_context(
                holding(
                    store.engine,
                    PULL,
                    ttl=settings.daemon.lock_ttl,
                    role="syncd sync",
                    wait=wait,
                    on_lost=lambda _reason: halt.set(),
                    hint=WAIT_HINT,
                )
            )
        except BaseException:
            lease.close()  # refused: close the store, record no run
            raise
    own_client = client is None
    client = client or connect(settings)
    share_pacing(client, store.pace_engine)
    run_id = store.start_run("sync", job="pull:" + ",".join(names), holder=holder)
    targets: list[Target] = []
    try:
        targets = open_targets(settings, store, mappings)
        view = progress if isinstance(progress, Progress) else Progress(enabled=progress)
        entered = nullcontext(view) if view is progress else view
        with entered as bar, structlog.contextvars.bound_contextvars(run_id=run_id):
            if bar.enabled:
                bar.begin(names)
            report = SyncRun(settings, store, client, targets, progress=bar, stop=stop).run(names, full=full)
            bar.finish(report.streams)
        report.destinations = destinations(targets)
        close_targets(targets)
        store.finish_run(
            run_id, "ok" if report.ok else "failed", report.as_dict(), "; ".join(report.errors()) or None
        )
        return report
    except BaseException as exc:
        store.finish_run(run_id, "failed", {}, describe(exc))
        raise
    finally:
        if own_client:
            client.close()
        lease.close()


def connect(settings: Settings, *, sleep: Callable[[float], None] | None = None) -> InvoicedClient:
    """An Invoiced client from the configuration; it shares the account's pace with the
    account's other processes once a run attaches its store (`share_pacing`). `sleep`: the
    retry waits' sleep (a daemon's or worker's ends early on SIGTERM)."""
    from syncd.invoiced import RetryPolicy

    conf = settings.invoiced
    policy = RetryPolicy(
        attempts=conf.retry_attempts,
        budget=conf.retry_budget,
        rate_limit_budget=conf.rate_limit_budget,
        request_deadline=conf.request_deadline,
        sleep=sleep if sleep is not None else time.sleep,
    )
    client = InvoicedClient.connect(
        conf.base_url,
        conf.api_key.get_secret_value(),
        timeout=conf.timeout,
        policy=policy,
        max_connections=conf.max_connections,
    )
    client.pace_key = settings.account
    return client


def iter_records(store: Store, stream: str, limit: int) -> Iterator[Record]:
    """Up to `limit` stored records of a stream (for previews)."""
    count = 0
    for batch in store.iter_raw(stream, include_deleted=False, batch=min(limit, 1000)):
        for record in batch:
            yield record
            count += 1
            if count >= limit:
                return
