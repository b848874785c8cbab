"""The Pacer on a fake clock: a shared pause on 429, the pace it adapts, the run's budget."""

from __future__ import annotations

import itertools
import math
import threading

import pytest

from syncd.invoiced.pacing import Pacer, Timeline


class FakeTime:
    """A clock that only moves when someone sleeps; records the sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))
        self.now += seconds


@pytest.fixture
def t() -> FakeTime:
    return FakeTime()


def pacer(t: FakeTime, **kw: float) -> Pacer:
    return Pacer(clock=t.clock, sleep=t.sleep, **kw)


def test_unpaced_until_the_first_429(t: FakeTime) -> None:
    p = pacer(t)
    for _ in range(50):
        p.acquire()
        p.succeeded()
    assert t.sleeps == [] and p.rate is None


def test_a_429_pauses_every_caller_until_its_retry_after(t: FakeTime) -> None:
    p = pacer(t)
    sent = p.acquire()
    until = p.throttled(sent, 2.0)
    assert until == 1002.0
    # Another thread's next request waits the pause out, though it never saw the 429.
    assert p.acquire() == 1002.0
    assert t.sleeps == [2.0]
    # The thread that drew the 429 slept through the pause itself: it does not wait twice.
    t.sleeps.clear()
    p.acquire(waited_until=until)
    assert t.sleeps == []


def test_a_longer_pause_set_while_a_caller_sleeps_is_waited_out_too(t: FakeTime) -> None:
    p = pacer(t)
    p.throttled(p.acquire(), 1.0)
    extended = threading.Event()

    def sleep(seconds: float) -> None:
        t.sleep(seconds)
        if not extended.is_set():  # another thread draws a longer 429 meanwhile
            extended.set()
            p.throttled(t.now - 0.5, 3.0)

    p.sleep = sleep
    assert p.acquire() == pytest.approx(1001.0 + 3.0)
    assert t.sleeps == [1.0, 3.0]


def test_first_pace_is_measured_from_successes_then_lowered_once_per_episode(t: FakeTime) -> None:
    p = pacer(t, decrease=0.8)
    for _ in range(10):  # ten answers in two seconds: 5 requests/s
        p.acquire()
        p.succeeded()
        t.now += 0.2
    sent = [p.acquire() for _ in range(3)]  # three requests in flight hit the empty bucket
    p.throttled(sent[0], 1.0)
    assert 0.8 * 4 <= p.rate <= 0.8 * 5  # 0.8 x the successes of the last second
    first = p.rate
    # The same episode: answers to requests sent before the pace was lowered.
    p.throttled(sent[1], 1.0)
    p.throttled(sent[2], 1.0)
    assert p.rate == first and p.episodes == 1
    # A request sent after the decrease that is throttled again: a new episode, the end of
    # slow start: one step of it back, lowered.
    later = p.acquire()
    p.throttled(later, 1.0)
    assert p.rate == pytest.approx(first / (1 + p.probe) * 0.8) and p.episodes == 2


def test_no_pace_from_a_lone_429_before_any_answer(t: FakeTime) -> None:
    p = pacer(t)
    sent = p.acquire()
    p.throttled(sent, 1.0)
    p.done()
    assert p.rate is None and p.episodes == 0
    assert p.acquire() == 1001.0  # the pause alone holds everyone back


def test_a_429_before_any_answer_with_others_in_flight_sets_a_first_pace(t: FakeTime) -> None:
    # Unpaced, every request waiting on the pause would go when it ends and draw the same
    # 429s again: one request at least got through (its answer may just not be counted yet).
    p = pacer(t, decrease=0.8, min_span=0.5)
    first, refused = p.acquire(), p.acquire()
    p.throttled(refused, 1.0)
    assert first == refused and p.rate == pytest.approx(0.8 * 1 / 0.5) and p.episodes == 1
    assert p.acquire() == 1001.0  # one at the end of the pause
    assert p.acquire() == pytest.approx(1001.0 + 1 / p.rate)  # the next a slot of the pace later


def test_a_set_pace_sends_one_request_when_a_pause_ends_then_spaces_them(t: FakeTime) -> None:
    p = pacer(t)
    p.succeeded()
    until = p.throttled(p.acquire(), 1.0)
    assert p.rate is not None
    starts = [p.acquire() for _ in range(5)]
    assert starts[0] == pytest.approx(until)  # Retry-After: when the server has one again
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert gaps == pytest.approx([1 / p.rate] * 4)


def test_sustained_success_raises_the_pace_slowly_and_a_429_lowers_it(t: FakeTime) -> None:
    p = pacer(t, increase=0.03, probe=0.0, decrease=0.8)
    p.succeeded()
    p.throttled(p.acquire(), 1.0)
    p.rate = 10.0
    for _ in range(100):  # ten seconds at ~10/s
        p.acquire()
        p.succeeded()
    assert 12.0 < p.rate < 14.5  # +3 % per second, not a jump
    high = p.rate
    p.throttled(p.acquire(), 1.0)
    # Lowered from the pace or, when less, from what the server let through lately.
    assert 0.6 * high < p.rate <= high * 0.8


def test_pace_never_drops_below_the_floor(t: FakeTime) -> None:
    p = pacer(t, floor=0.5)
    p.succeeded()
    for _ in range(40):
        p.throttled(p.acquire(), 1.0)
    assert p.rate == 0.5


def test_budget_counts_overlapping_waits_once_and_refuses_past_it(t: FakeTime) -> None:
    p = pacer(t, budget=10.0)
    assert p.spend(4.0) and p.spend(4.0) and p.spend(3.0)  # three threads, one pause: 4 s
    assert p.limited == 4.0
    t.now += 4.0
    assert p.spend(5.0)
    assert p.limited == 9.0
    t.now += 5.0
    assert not p.spend(2.0)  # 11 s > 10 s: given up, nothing charged
    assert p.limited == 9.0
    p.reset_budget()
    assert p.spend(2.0)


def test_wait_lines_are_rate_limited(t: FakeTime) -> None:
    p = pacer(t, log_every=5.0)
    said = []
    for _ in range(20):
        said.append(p.should_log())
        t.now += 1.0
    assert said.count(True) == 4


def test_many_threads_share_one_pace(t: FakeTime) -> None:
    lock = threading.Lock()

    def sleep(seconds: float) -> None:
        with lock:  # every thread's sleep moves the one fake clock on
            t.now += seconds

    p = Pacer(clock=t.clock, sleep=sleep)
    p.succeeded()
    p.throttled(p.acquire(), 1.0)
    p.rate = 5.0
    sent: list[float] = []

    def walk() -> None:
        for _ in range(10):
            at = p.acquire()
            with lock:
                sent.append(at)

    threads = [threading.Thread(target=walk) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    # Eighty requests of eight threads, yet never more than the pace allows: by any grant,
    # at most one second's worth plus 5/s since the first.
    slots = sorted(sent)
    assert len(slots) == 80 and slots[0] >= 1001.0
    for k, at in enumerate(slots):
        assert k + 1 <= 5.0 + (at - slots[0]) * 5.0 + 1e-6, (k, at)


def test_a_pace_that_rises_applies_to_callers_already_waiting(t: FakeTime) -> None:
    p = pacer(t)
    p.succeeded()
    until = p.throttled(p.acquire(), 1.0)
    p.rate = 1.0
    t.now = until
    p.acquire()  # the next token of a 1/s pace: a one-second wait
    t.sleeps.clear()

    def sleep(seconds: float) -> None:
        t.sleeps.append(round(seconds, 6))
        p.rate = 10.0  # raised while this caller sleeps
        t.now += 0.1

    p.sleep = sleep
    p.acquire()
    assert t.sleeps == [1.0]  # woke after a tenth of it and found the token of a 10/s pace


def test_timeline_moves_on_by_waits_a_fake_sleep_skipped() -> None:
    recorded: list[float] = []
    timeline = Timeline(recorded.append)
    before = timeline.now()
    timeline.sleep(30.0)
    assert recorded == [30.0]
    assert timeline.now() - before >= 30.0
    assert not math.isinf(timeline.now())
