"""One request allowance shared by every thread of a client, adapted to the server's 429s.

    acquire()     before each request: wait out a shared pause, then for a token of the pace
    throttled()   a 429 with Retry-After: everyone pauses until then; the pace is set once
                  per episode from the pace that was refused and what the server let through
    succeeded()   a 2xx: the pace climbs (slow start; quickly back to the peak; then slowly)
    spend()       charge a rate-limit wait to the run's budget; False once it is spent

Until the first 429 the client is not paced at all. The pace is a token bucket (no timer
thread): a caller takes a token under a lock, or sleeps outside it until the next one and
asks again, so concurrent walks take turns instead of all drawing 429s, and a pace that
changes applies to every sleeper at once. It holds one request (a server with a burst of
one refuses any catching up), and one is sent as a pause ends: Retry-After is when the
server has one again. Every overshoot costs a whole Retry-After (often rounded up to a
second), so past the last peak the pace probes upward slowly (`grown`, `lowered`).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable


class Timeline:
    """A monotonic clock that also moves on by waits an injected `sleep` only records.

    Tests give RetryPolicy a `sleep` that returns at once; the Pacer's clock must then
    still see the time as passed, or it would wait for the same instant again.
    """

    def __init__(self, sleep: Callable[[float], None]) -> None:
        self._sleep = sleep
        self._ahead = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        return time.monotonic() + self._ahead

    def sleep(self, seconds: float) -> None:
        started = time.monotonic()
        self._sleep(seconds)
        short = seconds - (time.monotonic() - started)
        if short > 0.001:
            with self._lock:
                self._ahead += short


class Pacer:
    """Thread-safe; `clock` and `sleep` are injectable so tests run on a fake clock."""

    def __init__(
        self,
        *,
        budget: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        decrease: float = 0.95,
        increase: float = 0.002,
        recover: float = 0.05,
        probe: float = 0.3,
        floor: float = 0.5,
        ceiling: float = 1000.0,
        burst: float = 0.0,
        window: float = 10.0,
        settle: float = 3.0,
        harder: float = 0.8,
        reach: float = 3.0,
        min_span: float = 0.5,
        log_every: float = 5.0,
    ) -> None:
        """
        Args:
            budget: seconds the client may spend waiting on rate limits (counted once when
                several threads wait at the same time) before a 429 is given up on.
            decrease: on a new 429 episode the pace becomes this share of what the server
                let through (measured), or of the pace the refused request was sent at,
                when that is lower (`lowered`).
            increase: relative gain of the pace per second above the peak (0.002: 0.2 %/s):
                every overshoot costs a whole Retry-After pause, so it probes upward slowly.
            recover: relative gain per second below the peak (`decrease` x the pace last
                refused): back up quickly to where the server was last found.
            probe: until the second episode the pace grows by this fraction per success
                (slow start, as in TCP): the first pace is a guess from one burst and may
                be far too low; the overshoot that ends it brackets the server's rate.
            reach: when that guess counted 5 successes or more, slow start stops at this
                many times it (a server's saved burst would carry it far past the rate).
            floor, ceiling: bounds of the pace (requests/s); above `ceiling` pacing stops.
            burst: seconds of the pace that may be sent at once after an idle moment (0:
                one request; a server with a burst of one refuses any catching up).
            window: the longest span of successes (since the last pause) measured on a 429.
            settle: a 429 within this many seconds of a pause is a quick repeat: the pace is
                lowered by `harder` instead, and climbs back only to what got through.
            min_span: the shortest span the first episode's guess is taken over.
        """
        self.budget = budget
        self.clock, self.sleep = clock, sleep
        self.decrease, self.increase, self.recover, self.probe = decrease, increase, recover, probe
        self.floor, self.ceiling, self.burst = floor, ceiling, burst
        self.window, self.log_every, self.min_span, self.settle = window, log_every, min_span, settle
        self.harder, self.reach = harder, reach
        self.rate: float | None = None  # requests/s; None: not paced
        self.peak: float | None = None  # the pace to climb back to quickly after an episode
        self.limited = 0.0  # rate-limit waiting charged to the budget so far
        self.episodes = 0  # 429 episodes that lowered the pace
        self.in_flight = 0  # requests acquired and not yet `done`
        self._lock = threading.Lock()
        self._tokens = 0.0  # of the pace's bucket, as of `_filled_at`
        self._filled_at = -math.inf
        self._paused_until = -math.inf
        self._decreased_at = -math.inf
        self._resumed_at = -math.inf  # when the current span of sending began (first request, end of a pause)
        self._limited_until = -math.inf
        self._successes: deque[float] = deque()
        self._last_log = -math.inf
        self._paces: dict[float, float] = {}  # recent sends -> the pace they were sent at
        self._pace_order: deque[float] = deque()

    def sent_at_pace(self, sent_at: float, rate: float | None) -> None:
        """Remember the pace a request was sent at: a 429 to it measures that pace, not the
        one it has grown to since (requests in flight, slots reserved ahead)."""
        if rate is None:
            return
        self._paces[sent_at] = rate
        self._pace_order.append(sent_at)
        while len(self._pace_order) > 256:
            self._paces.pop(self._pace_order.popleft(), None)

    def pace_of(self, sent_at: float) -> float | None:
        """The pace a request sent at `sent_at` was sent at; None when not known."""
        return self._paces.get(sent_at)

    # -- before a request -------------------------------------------------------------

    def acquire(self, waited_until: float = -math.inf) -> float:
        """Block until this thread may send; the instant it was cleared (for `throttled`).

        `waited_until`: the end of a pause this caller has already waited out itself.
        """
        while True:
            with self._lock:
                # The caller slept until `waited_until` already (on this clock, or a fake one).
                now = max(self.clock(), waited_until)
                if self._resumed_at == -math.inf:
                    self._resumed_at = now
                if self._paused_until > now:
                    wait = self._paused_until - now
                elif self.rate is None:
                    self.in_flight += 1
                    return now
                else:
                    capacity = max(1.0, self.rate * self.burst)
                    self._tokens = min(capacity, self._tokens + max(0.0, now - self._filled_at) * self.rate)
                    self._filled_at = max(self._filled_at, now)
                    # (1e-9: a sleep of exactly the computed wait must find the token, even
                    # where float rounding leaves it a hair short.)
                    if self._tokens >= 1.0 - 1e-9:
                        self._tokens = max(0.0, self._tokens - 1.0)
                        self.sent_at_pace(now, self.rate)
                        self.in_flight += 1
                        return now
                    # Sleep until the next token at the current pace, then ask again: a
                    # pace that rises or a pause that begins meanwhile applies at once.
                    wait = (1.0 - self._tokens) / self.rate
            self.sleep(wait)

    # -- after a response -------------------------------------------------------------

    def done(self) -> None:
        """A request acquired earlier is over, whatever its outcome (after `succeeded`/`throttled`)."""
        with self._lock:
            self.in_flight = max(0, self.in_flight - 1)

    def succeeded(self) -> None:
        """A request was answered: count it, and raise the pace when one is set."""
        with self._lock:
            now = self.clock()
            self._successes.append(now)
            while self._successes and self._successes[0] < now - self.window:
                self._successes.popleft()
            if self.rate is not None:
                self.rate = grown(self.rate, self.peak, self.episodes, self)
                if self.rate > self.ceiling:
                    self.rate = None

    def throttled(self, sent_at: float, retry_after: float) -> float:
        """A 429 asked to come back in `retry_after` s: pause everyone; lower the pace once per episode.

        Returns the instant the pause ends. A 429 answering a request sent before the last
        decrease is the same episode (many threads hit the empty bucket together): it
        extends the pause but does not lower the pace again.
        """
        with self._lock:
            now = self.clock()
            until = now + max(retry_after, 0.0)
            self._paused_until = max(self._paused_until, until)
            # Nothing answered yet: a first guess only when other requests are in flight
            # (their answers may not be counted yet, and unpaced they would all go again
            # when the pause ends, drawing the same 429s); a lone request sets no pace.
            if sent_at > self._decreased_at and (
                self.rate is not None or self._successes or self.in_flight > 1
            ):
                # What the server let through since this span of sending began (the last
                # `window` s at most): the client asked for more, it drew a 429.
                start = max(self._resumed_at, now - self.window)
                count = sum(1 for t in self._successes if t >= start)
                failed = (
                    self.rate if self.rate is None else min(self.rate, self.pace_of(sent_at) or self.rate)
                )
                self.rate, self.peak = lowered(failed, self.episodes, count, now - start, self)
                self._decreased_at = now
                self.episodes += 1
                # Resume at the new pace with one request at once: Retry-After is when
                # the server has one again; a burst would only draw the next 429.
                self._tokens, self._filled_at = 1.0, until
                self._resumed_at = until
            return until

    def paused(self, seconds: float) -> float:
        """A 429 that said nothing of when to come back: everyone waits `seconds` (a first
        backoff), and the pace stays. Returns the instant the pause ends.

        Without Retry-After a 429 says nothing of the server's rate: a lower pace on each
        would ratchet a long run down (sporadic 429s from a busy server slowed a push of
        600 requests six times), while the pause keeps the other threads from drawing one.
        """
        with self._lock:
            until = self.clock() + max(seconds, 0.0)
            self._paused_until = max(self._paused_until, until)
            return until

    # -- the run's budget for rate-limit waits ------------------------------------------

    def spend(self, seconds: float) -> bool:
        """Charge a wait starting now; False (nothing charged) when it would exceed the budget.

        Waits that overlap (threads waiting on the same pause) are charged once: the
        budget measures time during which the run was held back, not thread-seconds.
        """
        with self._lock:
            now = self.clock()
            end = now + max(seconds, 0.0)
            extra = max(0.0, end - max(now, self._limited_until))
            if self.limited + extra > self.budget:
                return False
            self.limited += extra
            self._limited_until = max(self._limited_until, end)
            return True

    def reset_budget(self) -> None:
        """Start a new run's budget (the pace itself is kept: the server's limit has not changed)."""
        with self._lock:
            self.limited = 0.0

    def should_log(self) -> bool:
        """At most one wait line every `log_every` seconds, whichever thread asks."""
        with self._lock:
            now = self.clock()
            if now - self._last_log < self.log_every:
                return False
            self._last_log = now
            return True


def grown(rate: float, peak: float | None, episodes: int, p: Pacer) -> float:
    """The pace after one more success: slow start; quickly back up to the peak; then slowly."""
    if episodes < 2:  # not past the peak or the ceiling: a server's burst carries it far
        return min(p.ceiling, peak or p.ceiling, max(rate + p.increase, rate * (1.0 + p.probe)))
    if peak is not None and rate < peak:
        return min(peak, rate + p.recover)
    return rate + p.increase


def lowered(
    failed: float | None, episodes: int, count: int, span: float, p: Pacer
) -> tuple[float | None, float | None]:
    """(pace, peak) on a new episode: the pace to resume at, and the pace to climb back to quickly.

    `failed`: the pace the refused request was sent at; `count`: the successes over the
    last `span` s of sending (since the pause before, `window` s at most).
    """
    if failed is None:
        # The first episode: a guess from what the unpaced client got through (one at least,
        # though its answer may not be counted yet).
        guess = max(p.floor, max(1, count) / max(p.min_span, span) * p.decrease)
        return guess, (guess * p.reach if count >= 5 else None)
    if episodes == 1:
        # The end of slow start: the server's rate lies between the pace that overshot and
        # the one a step before it, which got through.
        return max(p.floor, failed / (1.0 + p.probe) * p.decrease), failed * p.decrease
    measured = server_rate(failed, count, span)
    if span < p.settle:
        # Refused again soon after the last decrease: still too fast (a server's burst
        # carried the pace up, or the send was late and the next one early); lower
        # harder, and climb back to what got through, or `harder` x the pace when more.
        peak = min(failed, max(measured, failed * p.harder)) * p.decrease
        return max(p.floor, min(failed, measured) * p.harder), peak
    return max(p.floor, min(failed, measured) * p.decrease), failed * p.decrease


def server_rate(failed: float, count: int, span: float) -> float:
    """What the server let through: `count` successes in `span` s of sending after a pause,
    one of them what it saved during the pause (a burst of one, at least)."""
    if count >= 5 and span > 0:
        return (count - 1) / span
    return failed * 0.5 if count < 2 else failed  # refused straight after a pause: far too fast
