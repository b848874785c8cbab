"""The cluster test's overlap check catches what it must: a takeover while the killed run's
process still lived, two runs of one stream at once; and lets sequential runs pass."""

from __future__ import annotations

from typing import Any

import pytest

from tests.worker.cluster import job_intervals, job_keys, overlaps

KILLED_AT = {"w1-0@vm:11": 105.0, "w2-0@vm:12": 300.0}


def run(i: int, job: str, holder: str, start: float, end: float | None, status: str = "ok") -> dict[str, Any]:
    return {"id": i, "job": job, "holder": holder, "started_at": start, "ended_at": end, "status": status}


def check(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    intervals = job_intervals({"acct01": rows}, "job", "holder", KILLED_AT.get)
    return [(a.holder, b.holder) for a, b in overlaps(intervals)]


def test_runs_one_after_another_pass() -> None:
    rows = [
        run(1, "pull:invoices", "w0-0@vm:10", 100.0, 104.0),
        run(2, "pull:invoices", "w1-0@vm:11", 104.0, 110.0),
        run(3, "pull:customers", "w0-0@vm:10", 105.0, 106.0),  # another job may run meanwhile
    ]
    assert check(rows) == []


def test_a_killed_run_lasts_until_the_kill_not_until_the_takeover_stamped_it() -> None:
    # The takeover at 104 marked the run interrupted at 104, but its process ran until 105.
    rows = [
        run(1, "pull:invoices", "w1-0@vm:11", 100.0, 104.0, status="interrupted"),
        run(2, "pull:invoices", "w0-0@vm:10", 104.0, 108.0),
    ]
    assert check(rows) == [("w1-0@vm:11", "w0-0@vm:10")]
    rows[1] = run(2, "pull:invoices", "w0-0@vm:10", 106.0, 108.0)
    assert check(rows) == []


def test_a_run_without_an_end_lasts_until_its_process_was_killed() -> None:
    rows = [
        run(1, "push", "w1-0@vm:11", 100.0, None, status="running"),
        run(2, "push", "w0-0@vm:10", 101.0, 102.0),
    ]
    assert check(rows) == [("w1-0@vm:11", "w0-0@vm:10")]


def test_a_run_left_open_by_a_process_still_alive_is_refused() -> None:
    rows = [run(1, "push", "w0-0@vm:10", 100.0, None, status="running")]
    with pytest.raises(AssertionError, match="holder alive"):
        check(rows)


def test_a_sync_of_several_streams_overlaps_a_pull_of_any_of_them() -> None:
    assert job_keys("pull:customers,invoices") == ["pull:customers", "pull:invoices"]
    rows = [
        run(1, "pull:customers,invoices", "w0-0@vm:10", 100.0, 110.0),
        run(2, "pull:invoices", "w2-0@vm:12", 109.0, 111.0),
    ]
    assert check(rows) == [("w0-0@vm:10", "w2-0@vm:12")]
