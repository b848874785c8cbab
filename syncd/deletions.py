"""Deletions: where each stream's read of deletion events starts, the read, and the
reconciliation by a listing of ids when the events no longer reach back far enough.

Deleted records never show up in `updated_after` listings; `GET /events` is how they are
seen. Each stream keeps an events *position* (cursor stream `events`, partition = stream
name): every deletion stamped at or after it is still to be applied. The rule that makes a
kill at any moment safe: a stream's position is stored before the first page of that stream
is ever delivered, and it only moves forward after the deletions up to the new position have
been delivered. So no record enters an output unless every deletion after its fetch will be
read.

A position is *anchored* when an event stamped at that second was seen (the newest event of
the last read, or of the listing when the position was fixed). An account keeps its events
for a limited time; once the events at the position are gone, the listing cannot say what
was deleted in between. A read that returns no event at or before an anchored position (or,
for a position without an anchor, returns only later events) has such a *gap*: the stream's
deletions are then reconciled by listing every id of the stream and treating stored records
missing from it as deleted.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from syncd.cursor import SETTLE_SECONDS, CursorWalk
from syncd.errors import SyncdError
from syncd.invoiced import InvoicedClient, Page
from syncd.invoiced.contract import MAX_SKEW, check_page
from syncd.store import Store
from syncd.streams import STREAMS

log = structlog.get_logger(__name__)

EVENTS = "events"  # the cursor stream of events positions; partition = the stream's name
_UNANCHORED = "events_unanchored:"  # Meta key prefix: "1" when no event was seen at the position
_RECONCILE = "events_reconcile:"  # Meta key prefix: "1" when records were stored before any position


@dataclass
class Event:
    """The parts of an event that deletions need."""

    timestamp: int
    object: str
    action: str
    subject_id: str | None


@dataclass
class Found:
    """What one read of events (and any reconciliation) found, for the streams read."""

    deleted: dict[str, set[str]] = field(default_factory=dict)
    positions: dict[str, tuple[int, bool]] = field(default_factory=dict)  # stream -> (position, anchored)
    reconciled: set[str] = field(default_factory=set)


def parse_event(item: Any, page: int, index: int, server_time: int | None = None) -> Event:
    """One `/events` item, checked; a `SyncdError` naming its position when it breaks the contract.

    A timestamp more than MAX_SKEW after the response's Date is refused like a record's
    `updated_at`: taken as the events position it would skip every deletion until then.
    """

    def broken(why: str) -> SyncdError:
        return SyncdError(f"GET /events: item {index} of page {page} is not a valid event: {why}")

    if not isinstance(item, dict):
        raise broken(f"expected an object, got {type(item).__name__}")
    stamp, kind = item.get("timestamp"), item.get("type")
    if isinstance(stamp, bool) or not isinstance(stamp, int):
        raise broken("timestamp is missing or not an integer")
    if server_time is not None and stamp > server_time + MAX_SKEW:
        raise broken(
            f"timestamp {stamp} is {stamp - server_time} s after the response's Date ({server_time}); "
            f"at most {MAX_SKEW} s of clock skew is accepted"
        )
    if not isinstance(kind, str) or "." not in kind:
        raise broken("type is missing or not '<object>.<action>'")
    obj, _, action = kind.partition(".")
    subject_id = None
    if action == "deleted":
        data = item.get("data")
        subject = data.get("object") if isinstance(data, dict) else None
        rid = subject.get("id") if isinstance(subject, dict) else None
        if isinstance(rid, bool) or not isinstance(rid, (int, str)) or str(rid) == "":
            raise broken(f"{kind} without data.object.id")
        subject_id = str(rid)
    return Event(stamp, obj, action, subject_id)


class Deletions:
    """Events positions of the streams in one run, the read of deletions and the reconciliation."""

    def __init__(self, store: Store, client: InvoicedClient, per_page: int = 100) -> None:
        self.store = store
        self.client = client
        self.per_page = per_page

    # -- positions ------------------------------------------------------------------------
    def anchored(self, name: str) -> bool:
        return self.store.get_meta(_UNANCHORED + name) != "1"

    def _store_position(self, name: str, position: int, anchored: bool) -> None:
        # Two writes: the one in between always says "anchored", which can only make a later
        # read see a gap that is not there (a needless reconciliation), never miss one.
        if anchored:
            self.store.set_meta(_UNANCHORED + name, "0")
            self.store.set_cursor(EVENTS, name, position)
        else:
            self.store.set_cursor(EVENTS, name, position)
            self.store.set_meta(_UNANCHORED + name, "1")

    def fix_start(self, names: Iterable[str]) -> tuple[int | None, dict[str, str]]:
        """Where this run's read of deletion events starts, and the streams that must not be
        walked (by name, with the reason).

        A stream without a position gets one now, *before* any page of it is delivered; when
        the events cannot be read for it, the stream is not walked.
        """
        names = sorted(set(names))
        cursors = self.store.cursors(EVENTS)
        missing = [n for n in names if n not in cursors]
        failed: dict[str, str] = {}
        if missing:
            try:
                position, anchored = self._now()
            except SyncdError as exc:
                log.error("events.failed", streams=missing, error=str(exc))
                failed = {n: f"events: {exc}" for n in missing}
            else:
                for name in missing:
                    if self.store.count_raw(name):
                        # Records delivered without a position (a store from before positions
                        # were fixed up front): deletions since their fetch are unknown.
                        self.store.set_meta(_RECONCILE + name, "1")
                    self._store_position(name, position, anchored)
                    cursors[name] = position
                log.info("events.position_fixed", streams=missing, position=position, anchored=anchored)
        known = [cursors[n] for n in names if n not in failed]
        return (min(known) if known else None), failed

    def _now(self) -> tuple[int, bool]:
        """A position at the server's present: an existing event's second when there is one
        (it anchors the next read), else the server's clock."""
        page = self.client.get_page("/events", {"per_page": "1"})
        events = [parse_event(item, 1, i, page.server_time) for i, item in enumerate(page.items, 1)]
        if events:
            return max(e.timestamp for e in events), True
        return page.server_time or int(time.time()), False

    # -- reading --------------------------------------------------------------------------
    def collect(self, since: int, names: Iterable[str]) -> Found:
        """Deletions of `names` since `since`, and the positions to store once they are applied."""
        names = sorted(set(names))
        cursors = self.store.cursors(EVENTS)
        objects = {STREAMS[n].object: n for n in names}
        found = Found()
        stamps: list[int] = []
        served: int | None = None
        params = {"start_date": str(max(since - SETTLE_SECONDS, 0)), "per_page": "100"}
        for number, page in enumerate(self.client.iter_pages("/events", params), 1):
            served = served or page.server_time
            for index, item in enumerate(page.items, 1):
                event = parse_event(item, number, index, page.server_time)
                stamps.append(event.timestamp)
                if event.action == "deleted" and event.object in objects and event.subject_id:
                    found.deleted.setdefault(objects[event.object], set()).add(event.subject_id)
        oldest = min(stamps, default=None)
        for name in names:
            position = cursors.get(name, since)
            owed = self.store.get_meta(_RECONCILE + name) == "1"
            if owed or self._gap(position, self.anchored(name), oldest):
                log.warning(
                    "events.gap",
                    stream=name,
                    position=position,
                    oldest_event=oldest,
                    reason="records were stored before the stream had an events position"
                    if owed
                    else "the events listing no longer reaches back to the stream's position",
                )
                found.deleted.setdefault(name, set()).update(self.reconcile(name))
                found.reconciled.add(name)
        # Re-reading from the newest event's second next time is harmless: deletes are idempotent.
        for name in names:
            if stamps:
                found.positions[name] = (max(stamps), True)
            elif name in found.reconciled:
                found.positions[name] = (max(served or int(time.time()), cursors.get(name, since)), False)
        return found

    @staticmethod
    def _gap(position: int, anchored: bool, oldest: int | None) -> bool:
        if anchored:  # the event at the position must still be listed
            return oldest is None or oldest > position
        # No event marked the position: only later events are listed, some may be gone.
        return oldest is not None and oldest > position

    def reconcile(self, name: str) -> set[str]:
        """Stored records of `name` that a complete listing of its ids no longer holds."""
        stream = STREAMS[name]
        listed: set[str] = set()

        def fetch(params: Mapping[str, str], next_url: str | None) -> Page:
            page = self.client.get_page(next_url or stream.path, None if next_url else params)
            # Checked like any page: one record stamped in the future would end the listing
            # early, and every stored record after it would be taken for deleted.
            page.items = check_page(stream.path, page.items, page.server_time, depth=page.depth)
            return page

        # The whole stream, scope left out: a record that left the scope is not deleted.
        walk = CursorWalk(fetch, {}, 0, self.per_page)
        try:
            for page in walk:
                listed.update(str(item["id"]) for item in page.items)
        except (KeyError, TypeError, ValueError) as exc:  # a record without id or updated_at
            raise SyncdError(f"GET {stream.path}: a malformed record in the listing of ids ({exc!r})") from None
        if walk.final_checkpoint() < walk.position:
            # A deep scan was disturbed: the listing may have skipped a live record.
            raise SyncdError(f"GET {stream.path}: the listing of ids changed under a bulk edit; retried next run")
        stored = {r.id for batch in self.store.iter_raw(name, include_deleted=False) for r in batch}
        gone = stored - listed
        log.warning("events.reconciled", stream=name, listed=len(listed), stored=len(stored), deleted=len(gone))
        return gone

    def commit(self, found: Found, names: Sequence[str]) -> None:
        """Move the positions of `names`, whose deletions have all been delivered."""
        for name in names:
            if name in found.positions:
                position, anchored = found.positions[name]
                self._store_position(name, position, anchored)
            if name in found.reconciled:
                self.store.set_meta(_RECONCILE + name, "0")
