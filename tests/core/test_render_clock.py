"""A file connector's render during a run waits on the next render's expected time."""

from __future__ import annotations

import pytest

import syncd.render_clock
from syncd.render_clock import RenderClock


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [1000.0]
    monkeypatch.setattr(syncd.render_clock.time, "monotonic", lambda: now[0])
    return now


def _rendered(rc: RenderClock, now: list[float], rows: int, took: float) -> None:
    rc.begin()
    now[0] += took
    rc.end(rows)


def test_the_first_render_is_due_after_one_period(clock: list[float]) -> None:
    rc = RenderClock(30.0)
    clock[0] += 29.9
    assert not rc.due()
    clock[0] += 0.1
    assert rc.due()


def test_unchanged_books_wait_thirty_renders(clock: list[float]) -> None:
    rc = RenderClock(10.0)
    _rendered(rc, clock, 1000, took=2.0)  # 1000 rows in 2 s: due 60 s after it began
    clock[0] += 57.9
    assert not rc.due()
    clock[0] += 0.1
    assert rc.due()


def test_growing_books_push_the_next_render_back_until_twenty_periods(clock: list[float]) -> None:
    rc = RenderClock(10.0)
    _rendered(rc, clock, 1000, took=2.0)
    rc.wrote(1000)  # the next render should take 4 s: 120 s (ten times the last alone: 20 s)
    clock[0] += 117.9
    assert not rc.due()
    clock[0] += 0.1
    assert rc.due()
    rc.wrote(100_000)  # waiting 30 times its time would outlast the run: 20 periods at most
    clock[0] += 80.0
    assert rc.due()


def test_renders_never_come_more_often_than_ten_times_their_time(clock: list[float]) -> None:
    rc = RenderClock(1.0)  # 20 periods are 20 s; a render takes 5 s
    _rendered(rc, clock, 1000, took=5.0)
    rc.wrote(10**6)
    clock[0] += 44.9
    assert not rc.due()
    clock[0] += 0.1
    assert rc.due()
