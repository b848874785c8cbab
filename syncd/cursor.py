"""The incremental read of one query: a keyset walk over `updated_at`, safe under page drift.

The API pages by number, and a record edited mid-listing moves to the end, so a deep
page walk can skip the record that slid into a page already read (API-NOTES.md). This
walk therefore asks for page 1 of `updated_after = C - 1` over and over, moving C to the
highest `updated_at` of each page. One response is one consistent snapshot, and page 1
of an ascending listing holds *every* record updated before its last second: nothing can
slip between two queries. `C - 1` re-reads the boundary second, which is right whether the
API's bound is strict or inclusive; the engine drops records it already has.

Only when a full page lies inside one second (a bulk edit) does the walk follow
`rel=next` through that second (a *deep scan*), and only there can drift skip a record:
a record already read in the scan that is edited or deleted before the scan ends shifts
the rest. The walk watches the scanned ids; if one reappears later with another
`updated_at`, is deleted, or the listing's total changes during the scan, the scan may
have skipped something, and the checkpoint stays at that second so the next run reads it
again. Until the end of the walk the checkpoint never passes a deep-scanned second.

A kill does not send a resumed walk back to that second, though: each page also carries a
`Resume` point (where the walk stands, and the seconds it deep-scanned without seeing a
disturbance). Stored beside the checkpoint, it lets the next run go on from where this one
stopped, watching the records it holds at those seconds exactly as this run would have
(`CursorWalk(resume=...)`): an edited one seen later, or a deleted one in the events, still
sends the cursor back to its second when the walk ends. A scan found disturbed is not
resumed over at all: the resumed walk reads it again at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

# Seconds of the server's clock re-read after a complete listing: a write the server stamped
# just before it answered may become visible to a list query a moment later.
SETTLE_SECONDS = 5


class PageLike(Protocol):
    items: list[dict[str, Any]]
    total: int | None
    next_url: str | None


@dataclass(frozen=True, slots=True)
class Resume:
    """Where a walk can go on after a kill: from `at`, watching its deep scans' `seconds`.

    Every record updated before `at` was yielded; each second in `seconds` (all below `at`)
    was deep-scanned and not seen disturbed. The walk's checkpoint is `min(seconds)`.
    """

    at: int
    seconds: tuple[int, ...]


@dataclass(slots=True)
class WalkPage:
    """Records from one response, and the checkpoint that is safe once they are written."""

    items: list[dict[str, Any]]
    checkpoint: int
    # Distinct records the whole walk should yield, from X-Total-Count (None without it).
    expected: int | None = None
    # Items the walk had not yielded before (a re-read boundary second counts once).
    new: int | None = None
    # Where a resumed walk may go on once these records are written (None: from `checkpoint`).
    resume: Resume | None = None


@dataclass(slots=True)
class _DeepScan:
    second: int
    ids: set[str] = field(default_factory=set)
    disturbed: bool = False


class CursorWalk:
    """Walks one query from cursor `start`; iterate it for pages, then read `final_checkpoint()`.

    `fetch(params, next_url)` returns one page: page 1 of the query when `next_url` is None.
    `resume` (from a page of an earlier, killed walk of the same query, whose checkpoint
    `start` is) goes on from `resume.at`; `watched` holds the records stored at its seconds
    (id -> updated_at), which a disturbance of those deep scans would move or delete.
    """

    def __init__(
        self,
        fetch: Callable[[Mapping[str, str], str | None], PageLike],
        params: Mapping[str, str],
        start: int,
        per_page: int = 100,
        *,
        resume: Resume | None = None,
        watched: Mapping[str, int] | None = None,
    ) -> None:
        self._fetch = fetch
        self._params = dict(params)
        self._per_page = per_page
        self.start = start
        self.position = start  # every record updated before `position` has been yielded
        self._scans: list[_DeepScan] = []
        self._watch: dict[str, tuple[int, _DeepScan]] = {}
        self.requests = 0
        self._ended = False
        self.yielded = 0  # distinct records yielded so far
        self.expected: int | None = None  # see `_estimate`
        # The newest second yielded and its (id, updated_at): the next page-1 query reads them again.
        self._edge: tuple[int, set[tuple[str, int]]] = (-1, set())
        if resume is not None and resume.seconds and min(resume.seconds) == start <= resume.at:
            self.position = resume.at
            scans = {second: _DeepScan(second) for second in resume.seconds}
            for rid, updated in (watched or {}).items():
                scan = scans.get(updated)
                if scan is not None:
                    scan.ids.add(rid)
                    self._watch[rid] = (updated, scan)
            self._scans.extend(scans[second] for second in sorted(scans))

    def _query(self, cursor: int, next_url: str | None) -> PageLike:
        self.requests += 1
        params = {
            **self._params,
            "updated_after": str(max(cursor - 1, 0)),
            "sort": "updated_at asc",
            "per_page": str(self._per_page),
        }
        page = self._fetch(params, next_url)
        if next_url is None:
            self._estimate(page, cursor)
        return page

    def _estimate(self, page: PageLike, cursor: int) -> None:
        """Records the walk will yield: those yielded so far plus what this query counts anew.

        Only for the progress view. Each page-1 query's X-Total-Count counts what is left
        from the cursor on, less the boundary second read again, so the estimate follows
        edits made during the walk. The pages of a deep scan belong to the query that
        started it, which already counted them.
        """
        if page.total is not None:
            second, seen = self._edge
            again = len(seen) if second >= cursor - 1 else 0
            self.expected = self.yielded + max(page.total - again, 0)

    def _page(self, items: list[dict[str, Any]], checkpoint: int) -> WalkPage:
        # Ascending order: an item below the newest second yielded, or in it and seen, is a re-read.
        second, seen = self._edge
        new = 0
        for item in items:
            key = (str(item["id"]), int(item["updated_at"]))
            if key[1] > second:
                second, seen = key[1], set()
            if key[1] == second and key not in seen:
                seen.add(key)
                new += 1
        self._edge = (second, seen)
        self.yielded += new
        expected = None if self.expected is None else max(self.expected, self.yielded)
        return WalkPage(items, checkpoint, expected, new, self._resume(checkpoint))

    def _resume(self, checkpoint: int) -> Resume | None:
        """The resume point once this page is written: None when it is the checkpoint itself,
        or when a scan was disturbed (a resumed walk then reads it again at once)."""
        if self.position <= checkpoint or any(scan.disturbed for scan in self._scans):
            return None
        seconds = tuple(sorted(scan.second for scan in self._scans if scan.second < self.position))
        return Resume(self.position, seconds) if seconds else None

    def _observe(self, items: Iterable[dict[str, Any]]) -> None:
        for item in items:
            hit = self._watch.get(str(item["id"]))
            if hit is not None and hit[0] != int(item["updated_at"]):
                hit[1].disturbed = True

    def _settled(self, page: PageLike) -> int:
        """The checkpoint a complete (last) page of the listing allows: its server time, less a margin.

        A last page that is not full is the whole rest of the listing at the moment it was
        served, so every record in scope updated before then is read, however old the newest
        one is. Without this, a date window whose records were last edited long ago would hold
        the stream's cursor back and make every later run re-read most of the stream.
        """
        served = getattr(page, "server_time", None)
        return int(served) - SETTLE_SECONDS if served else 0

    def _pin(self) -> int:
        return min((scan.second for scan in self._scans), default=self.position)

    def __iter__(self) -> Iterator[WalkPage]:
        while True:
            page = self._query(self.position, None)
            items = page.items
            self._observe(items)
            if not items:
                self.position = max(self.position, self._settled(page))
                return
            top = int(items[-1]["updated_at"])
            full = len(items) >= self._per_page and page.next_url is not None
            if not full:
                # The whole rest of the listing was in one snapshot.
                self.position = max(self.position, top, self._settled(page))
                yield self._page(items, min(self._pin(), self.position))
                return
            if top > self.position:
                self.position = top
                yield self._page(items, min(self._pin(), self.position))
                continue
            yield from self._deep_scan(page)
            if self._ended:
                return

    def _deep_scan(self, first: PageLike) -> Iterator[WalkPage]:
        """Follow rel=next through a bulk second until a later second shows up."""
        scan = _DeepScan(self.position)
        self._scans.append(scan)
        page, total = first, first.total
        while True:
            for item in page.items:
                rid = str(item["id"])
                if int(item["updated_at"]) <= scan.second:
                    scan.ids.add(rid)
                    self._watch[rid] = (int(item["updated_at"]), scan)
            if page.total != total:
                scan.disturbed = True
            top = int(page.items[-1]["updated_at"]) if page.items else scan.second
            if page.next_url is None or top > scan.second:
                self._ended = page.next_url is None
                self.position = max(self.position, top, self._settled(page) if self._ended else 0)
                yield self._page(page.items, self._pin())
                return
            yield self._page(page.items, self._pin())
            page = self._query(scan.second, page.next_url)
            self._observe(page.items)

    def note_deleted(self, ids: Iterable[str]) -> None:
        """Deletions seen in events: a deleted record that a deep scan had read disturbs it."""
        for rid in ids:
            hit = self._watch.get(rid)
            if hit is not None:
                hit[1].disturbed = True

    def final_checkpoint(self) -> int:
        """The cursor safe to store once every yielded page is durable."""
        disturbed = [scan.second for scan in self._scans if scan.disturbed]
        return min(disturbed, default=self.position)
