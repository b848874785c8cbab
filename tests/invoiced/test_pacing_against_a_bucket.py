"""The Pacer against a simulated token-bucket server, on a fake clock: share of the bound, share of 429s.

Several workers each take a request, acquire, "send" (the server decides when the request
arrives), and on a 429 wait out Retry-After (whole seconds, never 0, as the sandbox and many
servers send it). Events run in time order; a Pacer sleep is turned into "ask again then",
which is what Pacer.acquire does after a real sleep. Deterministic: no threads, no wall clock.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

import pytest

from syncd.invoiced.pacing import Pacer


class _Asleep(Exception):
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        raise _Asleep(seconds)


class _Bucket:
    """The server: `rate` tokens/s, at most `burst` saved; a refusal says when the next comes."""

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate, self.burst, self.tokens, self.last = rate, burst, float(burst), now

    def take(self, now: float) -> float | None:
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1:
            self.tokens -= 1
            return None
        return (1 - self.tokens) / self.rate


@dataclass
class Outcome:
    bound: float  # requests answered per second of the span of requests / the rate limit
    refused: float  # 429s / requests
    early: int  # requests sent before the end of a Retry-After the client was told of


def simulate(rate: float, burst: int, answered: int, *, workers: int = 3, latency: float = 0.002) -> Outcome:
    """Run `answered` requests through a fresh Pacer against a `rate`/`burst` token bucket."""
    t = _Clock()
    pacer = Pacer(clock=t.clock, sleep=t.sleep)
    server = _Bucket(rate, burst, t.now)
    events: list[tuple[float, int, tuple[object, ...]]] = []
    order = 0

    def at(when: float, *event: object) -> None:
        nonlocal order
        order += 1
        heapq.heappush(events, (when, order, event))

    todo, ok, refused, early = answered, 0, 0, 0
    first = last = math.nan
    not_before = -math.inf  # the latest Retry-After any worker was told of
    for worker in range(workers):
        todo -= 1
        at(t.now, "acquire", worker, -math.inf)
    while events:
        when, _, event = heapq.heappop(events)
        t.now = max(t.now, when)
        kind, worker = event[0], event[1]
        if kind == "acquire":
            waited = float(event[2])  # type: ignore[arg-type]
            try:
                sent = pacer.acquire(waited)
            except _Asleep as asleep:
                at(t.now + asleep.seconds, "acquire", worker, waited)
                continue
            early += sent < not_before - 1e-9
            at(t.now + latency, "arrive", worker, sent)
        elif kind == "arrive":
            first = t.now if math.isnan(first) else first
            last = t.now
            at(t.now + latency, "answer", worker, event[2], server.take(t.now))
        else:
            sent, refusal = float(event[2]), event[3]  # type: ignore[arg-type]
            if refusal is None:
                ok += 1
                pacer.succeeded()
                if todo:
                    todo -= 1
                    at(t.now, "acquire", worker, -math.inf)
            else:
                refused += 1
                until = pacer.throttled(sent, max(1, math.ceil(float(refusal))))  # type: ignore[arg-type]
                not_before = max(not_before, until)
                at(until, "acquire", worker, until)
            pacer.done()
    return Outcome(ok / (last - first) / rate, refused / (ok + refused), early)


def test_a_slow_server_with_a_burst_of_one_and_whole_second_retry_after() -> None:
    # The bench's `429` scenario: 5/s, burst 1, ~118 requests. Every overshoot costs a
    # whole-second pause (five requests of the bound); the old pacer reached 60 %.
    run = simulate(5.0, 1, 118)
    assert run.early == 0
    assert run.bound >= 0.80 and run.refused < 0.05


def test_a_longer_run_against_the_same_server_comes_nearer_the_bound() -> None:
    run = simulate(5.0, 1, 500)
    assert run.bound >= 0.88 and run.refused < 0.03


def test_a_fast_server_with_a_burst_of_one() -> None:
    # 50/s: slow start climbs from a guess of ~2/s; the old pacer reached ~37 %.
    run = simulate(50.0, 1, 1200, latency=0.001)
    assert run.bound >= 0.65 and run.refused < 0.01


@pytest.mark.parametrize(
    ("rate", "burst", "answered"), [(50.0, 50, 1200), (10.0, 10, 300), (200.0, 100, 5000)]
)
def test_servers_with_a_burst_are_used_to_their_bound(rate: float, burst: int, answered: int) -> None:
    # Slow start rides a saved burst far past the rate; the episodes after it bring it down.
    run = simulate(rate, burst, answered, latency=min(0.002, 0.2 / rate))
    assert run.early == 0
    assert run.bound >= (0.8 if rate > 100 else 0.93) and run.refused < 0.06


def test_a_server_of_one_request_a_second() -> None:
    run = simulate(1.0, 1, 60)
    assert run.early == 0
    assert run.bound >= 0.85  # the old pacer: 70 %
