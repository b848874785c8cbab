"""The keyset walk over updated_at: never loses a record, whatever the API's bound and drift."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from syncd.cursor import CursorWalk, Resume


@dataclass
class FakePage:
    items: list[dict[str, Any]]
    total: int | None
    next_url: str | None


@dataclass
class FakeListing:
    """An updated_after + sort=updated_at asc listing with page numbers, like the API's."""

    records: dict[int, int]  # id -> updated_at
    inclusive: bool = False
    per_page_seen: list[int] = field(default_factory=list)
    between: Callable[[FakeListing, int], None] | None = None  # mutation hook before each request
    requests: int = 0
    clock: int = 10_000

    def query(self, after: int) -> list[dict[str, Any]]:
        keep = [(u, i) for i, u in self.records.items() if (u >= after if self.inclusive else u > after)]
        return [{"id": i, "updated_at": u} for u, i in sorted(keep)]

    def fetch(self, params: Mapping[str, str], next_url: str | None) -> FakePage:
        if self.between is not None:
            self.between(self, self.requests)
        self.requests += 1
        if next_url:
            after_s, page_s, per_s = next_url.split("|")
            after, page, per = int(after_s), int(page_s), int(per_s)
        else:
            after, page, per = int(params["updated_after"]), 1, int(params["per_page"])
        rows = self.query(after)
        chunk = rows[(page - 1) * per : page * per]
        more = page * per < len(rows)
        return FakePage(chunk, len(rows), f"{after}|{page + 1}|{per}" if more else None)

    def edit(self, rid: int) -> None:
        self.clock += 1
        self.records[rid] = self.clock


def walk_all(listing: FakeListing, start: int = 0, per_page: int = 10) -> tuple[dict[int, int], int]:
    walk = CursorWalk(listing.fetch, {}, start, per_page)
    seen: dict[int, int] = {}
    for page in walk:
        for item in page.items:
            seen[item["id"]] = item["updated_at"]
    return seen, walk.final_checkpoint()


@pytest.mark.parametrize("inclusive", [False, True])
def test_reads_everything_once_per_query_and_stops(inclusive: bool) -> None:
    listing = FakeListing({i: 100 + i // 3 for i in range(95)}, inclusive=inclusive)
    seen, checkpoint = walk_all(listing)
    assert seen == listing.records
    assert checkpoint == max(listing.records.values())


@pytest.mark.parametrize("inclusive", [False, True])
def test_bulk_second_larger_than_a_page_is_read_whole(inclusive: bool) -> None:
    records = {i: 100 for i in range(57)} | {100 + i: 101 + i for i in range(5)}
    listing = FakeListing(records, inclusive=inclusive)
    seen, checkpoint = walk_all(listing)
    assert seen == records
    assert checkpoint == 105


def test_second_run_from_checkpoint_makes_one_request_and_rereads_only_the_last_second() -> None:
    listing = FakeListing({i: 100 + i for i in range(30)})
    _, checkpoint = walk_all(listing)
    listing.requests = 0
    seen, again = walk_all(listing, start=checkpoint)
    assert listing.requests == 1
    assert set(seen) == {29}  # the boundary second, re-read on purpose
    assert again == checkpoint


def test_page_drift_skip_in_a_bulk_second_is_caught_by_the_next_run() -> None:
    """A record edited mid-scan shifts the rest; the checkpoint must not pass that second."""
    records = {i: 100 for i in range(40)} | {1000: 200}

    def drift(listing: FakeListing, request: int) -> None:
        if request == 2:  # after page 1 and 2 of the bulk second were served
            listing.edit(0)  # an already-read record moves to the end

    listing = FakeListing(dict(records), between=drift)
    seen, checkpoint = walk_all(listing)
    skipped = set(range(40)) - set(seen)
    assert skipped, "the fake must really drift for this test to mean anything"
    assert checkpoint == 100  # pinned at the disturbed second
    listing.between = None
    again, _ = walk_all(listing, start=checkpoint)
    assert skipped <= set(again)


def test_deletion_in_a_bulk_second_pins_the_checkpoint() -> None:
    records = {i: 100 for i in range(40)} | {1000: 200}

    def delete(listing: FakeListing, request: int) -> None:
        if request == 2:
            del listing.records[1]

    listing = FakeListing(dict(records), between=delete)
    _, checkpoint = walk_all(listing)
    assert checkpoint == 100


def test_undisturbed_bulk_second_releases_the_pin() -> None:
    records = {i: 100 for i in range(40)} | {1000: 200}
    listing = FakeListing(dict(records))
    walk = CursorWalk(listing.fetch, {}, 0, 10)
    checkpoints = [page.checkpoint for page in walk]
    assert max(checkpoints) == 100  # never past the bulk second while walking
    walk.note_deleted(["999"])  # unrelated deletion
    assert walk.final_checkpoint() == 200
    walk.note_deleted(["3"])  # a record read in the scan was deleted: may have shifted others
    assert walk.final_checkpoint() == 100


@pytest.mark.parametrize("seed", range(25))
@pytest.mark.parametrize("inclusive", [False, True])
def test_random_edits_during_walks_never_lose_a_record_across_runs(seed: int, inclusive: bool) -> None:
    """Property: under random edits and bulk seconds, repeated runs converge with nothing lost."""
    rng = random.Random(seed)
    records = {}
    for i in range(300):
        records[i] = rng.choice([100, 100, 100, 101, 102]) if i < 120 else 103 + i // rng.randint(1, 8)
    edits = {"n": 0}

    def churn(listing: FakeListing, request: int) -> None:
        if edits["n"] < 60 and rng.random() < 0.5:
            edits["n"] += 1
            for rid in rng.sample(sorted(listing.records), rng.randint(1, 4)):
                listing.edit(rid)

    listing = FakeListing(records, inclusive=inclusive, between=churn)
    cursor, seen = 0, {}
    for _ in range(3):  # the edits stop after a while; a later run must converge
        walk = CursorWalk(listing.fetch, {}, cursor, 10)
        for page in walk:
            assert page.checkpoint >= cursor
            for item in page.items:
                seen[item["id"]] = item["updated_at"]
        cursor = walk.final_checkpoint()
    listing.between = None
    walk = CursorWalk(listing.fetch, {}, cursor, 10)
    for page in walk:
        for item in page.items:
            seen[item["id"]] = item["updated_at"]
    assert seen == listing.records


@dataclass
class TimedPage(FakePage):
    server_time: int | None = None


def test_a_complete_listing_moves_the_checkpoint_to_the_server_clock() -> None:
    """An old (or empty) date window must not hold the stream's cursor back at its newest record."""
    listing = FakeListing({i: 100 + i for i in range(5)})

    def fetch(params: Mapping[str, str], next_url: str | None) -> TimedPage:
        page = listing.fetch(params, next_url)
        return TimedPage(page.items, page.total, page.next_url, server_time=9_000)

    walk = CursorWalk(fetch, {}, 0, 10)
    pages = list(walk)
    assert pages[-1].checkpoint == 9_000 - 5
    assert walk.final_checkpoint() == 9_000 - 5
    empty = FakeListing({})

    def fetch_empty(params: Mapping[str, str], next_url: str | None) -> TimedPage:
        page = empty.fetch(params, next_url)
        return TimedPage(page.items, page.total, page.next_url, server_time=9_000)

    walk = CursorWalk(fetch_empty, {}, 50, 10)
    assert list(walk) == []
    assert walk.final_checkpoint() == 9_000 - 5


def test_an_incomplete_walk_never_jumps_to_the_server_clock() -> None:
    """Mid-listing pages are checkpointed at their newest record, never at the clock."""
    listing = FakeListing({i: 100 + i for i in range(25)})

    def fetch(params: Mapping[str, str], next_url: str | None) -> TimedPage:
        page = listing.fetch(params, next_url)
        return TimedPage(page.items, page.total, page.next_url, server_time=9_000)

    checkpoints = [p.checkpoint for p in CursorWalk(fetch, {}, 0, 10)]
    assert checkpoints[:-1] == [109, 118]
    assert checkpoints[-1] == 9_000 - 5


# -- resuming a killed walk -------------------------------------------------------------------


def run_killed(
    listing: FakeListing,
    cursor: int,
    resume: Resume | None,
    held: dict[int, int],
    pages: int | None,
    per_page: int = 10,
) -> tuple[int, Resume | None, CursorWalk, bool]:
    """One run of a walk killed after `pages` written pages (None: runs to its end).

    `held` stands for the raw store (id -> updated_at written); returns the stored cursor and
    resume point afterwards, the walk and whether it ended.
    """
    watched = {str(i): u for i, u in held.items() if resume is not None and u in resume.seconds}
    walk = CursorWalk(listing.fetch, {}, cursor, per_page, resume=resume, watched=watched)
    for n, page in enumerate(walk, 1):
        for item in page.items:
            held[item["id"]] = item["updated_at"]
        cursor, resume = page.checkpoint, page.resume
        if pages is not None and n >= pages:
            return cursor, resume, walk, False
    return walk.final_checkpoint(), None, walk, True


def test_a_killed_walk_resumes_past_its_deep_scans() -> None:
    """Killed after a bulk second, the next run goes on where it stopped, not at that second."""
    records = {i: 100 for i in range(35)} | {100 + i: 101 + i for i in range(200)}
    whole = FakeListing(dict(records))
    walk_all(whole)
    listing = FakeListing(dict(records))
    cursor, resume, _, _ = run_killed(listing, 0, None, {}, pages=15)
    assert cursor == 100 and resume is not None and resume.seconds == (100,)
    killed = listing.requests
    listing.requests = 0
    held: dict[int, int] = {}
    cursor, _, _, ended = run_killed(listing, cursor, resume, held, None)
    assert ended and cursor == 300
    assert killed + listing.requests == whole.requests  # not one page read twice
    assert min(held.values()) >= resume.at - 1  # nothing before the kill point was read again


def test_a_scan_disturbed_before_the_kill_and_seen_after_it_pins_the_resumed_walk() -> None:
    """An edit inside a bulk second skips a record; the walk that sees the edit is the resumed one."""
    records = {i: 100 for i in range(40)} | {100 + i: 101 + i for i in range(100)}

    def drift(listing: FakeListing, request: int) -> None:
        if request == 2:  # page 2 of the bulk second: record 0, read on page 1, moves to the end
            listing.edit(0)

    listing = FakeListing(dict(records), between=drift)
    held: dict[int, int] = {}
    cursor, resume, _, _ = run_killed(listing, 0, None, held, pages=6)
    skipped = set(range(40)) - set(held)
    assert skipped, "the fake must really drift for this test to mean anything"
    assert resume is not None and cursor == 100
    listing.between = None
    cursor, _, _, ended = run_killed(listing, cursor, resume, held, None)
    assert ended and cursor == 100  # the resumed walk saw record 0 again: the second is read again
    cursor, _, _, _ = run_killed(listing, cursor, None, held, None)
    assert skipped <= set(held)


def test_a_deletion_in_a_resumed_scan_pins_the_checkpoint() -> None:
    records = {i: 100 for i in range(40)} | {100 + i: 101 + i for i in range(100)}
    listing = FakeListing(dict(records))
    held: dict[int, int] = {}
    cursor, resume, _, _ = run_killed(listing, 0, None, held, pages=6)
    watched = {str(i): u for i, u in held.items() if resume is not None and u in resume.seconds}
    walk = CursorWalk(listing.fetch, {}, cursor, 10, resume=resume, watched=watched)
    list(walk)
    walk.note_deleted(["7"])  # the events, read after the walk, name a record of the scan
    assert walk.final_checkpoint() == 100


def test_a_scan_seen_disturbed_gives_no_resume_point() -> None:
    records = {i: 100 for i in range(40)} | {100 + i: 101 + i for i in range(100)}

    def drift(listing: FakeListing, request: int) -> None:
        if request == 2:
            listing.edit(0)

    listing = FakeListing(dict(records), between=drift)
    resumes = [page.resume for page in CursorWalk(listing.fetch, {}, 0, 10)]
    # Pages after the edited record was seen again: a resumed walk reads the bulk second at once.
    assert resumes[-1] is None
    assert any(r is not None for r in resumes)


def test_a_resume_point_not_matching_the_cursor_is_ignored() -> None:
    listing = FakeListing({i: 100 + i for i in range(30)})
    walk = CursorWalk(listing.fetch, {}, 105, 10, resume=Resume(120, (100,)))
    assert walk.position == 105


@pytest.mark.parametrize("seed", range(25))
@pytest.mark.parametrize("inclusive", [False, True])
def test_random_edits_deletions_and_kills_never_lose_a_record(seed: int, inclusive: bool) -> None:
    """Property: walks killed at random pages and resumed, under edits, deletions and bulk
    seconds, converge with nothing lost and nothing deleted kept."""
    rng = random.Random(seed)
    records = {}
    for i in range(300):
        records[i] = rng.choice([100, 100, 100, 101, 102, 150, 150]) if i < 160 else 103 + i // rng.randint(1, 8)
    deleted: list[int] = []  # the events: every deletion since the first run (none applied yet)
    changes = {"n": 0}

    def churn(listing: FakeListing, request: int) -> None:
        if changes["n"] < 80 and rng.random() < 0.5:
            changes["n"] += 1
            for rid in rng.sample(sorted(listing.records), rng.randint(1, 4)):
                if rng.random() < 0.2:
                    del listing.records[rid]
                    deleted.append(rid)
                else:
                    listing.edit(rid)

    listing = FakeListing(records, inclusive=inclusive, between=churn)
    held: dict[int, int] = {}
    cursor, resume = 0, None
    for run in range(12):
        if run == 8:
            listing.between = None  # the data comes to rest; the last runs must converge
        pages = rng.randint(1, 12) if run < 6 else None
        before = cursor
        cursor, resume, walk, ended = run_killed(listing, cursor, resume, held, pages)
        assert cursor >= before or ended
        if ended:
            walk.note_deleted(str(rid) for rid in deleted)
            cursor = walk.final_checkpoint()
            for rid in deleted:
                held.pop(rid, None)
            deleted.clear()
    assert held == listing.records
