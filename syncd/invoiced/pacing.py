"""One request allowance shared by every thread of a client, adapted to the server's 429s.

    acquire()     before each request: wait out a shared pause, then for a token of the pace
    throttled()   a 429 with Retry-After: everyone pauses until then; the pace drops once
    succeeded()   a 2xx: the pace creeps back up (additive increase, multiplicative decrease)
    spend()       charge a rate-limit wait to the run's budget; False once it is spent

Until the first 429 the client is not paced at all. The pace is a token bucket (no timer
thread): a caller takes a token under a lock, or sleeps outside it until the next one and
asks again, so concurrent walks take turns instead of all drawing 429s, and a pace that
changes applies to every sleeper at once. It holds one second of the pace, and is empty
when a pause ends: a server that just ran dry refills slowly.
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
        decrease: float = 0.8,
        increase: float = 0.03,
        probe: float = 0.3,
        floor: float = 0.5,
        ceiling: float = 1000.0,
        burst: float = 1.0,
        window: float = 1.0,
        min_span: float = 0.5,
        log_every: float = 5.0,
    ) -> None:
        """
        Args:
            budget: seconds the client may spend waiting on rate limits (counted once when
                several threads wait at the same time) before a 429 is given up on.
            decrease: factor applied to the pace on a new 429 episode.
            increase: relative gain of the pace per second of successful requests (0.03: 3 %/s).
            probe: until the second episode the pace grows by this fraction per success
                (slow start, as in TCP): the first pace is a guess from one burst and may
                be far too low; an overshoot costs one episode, measured back down.
            floor, ceiling: bounds of the pace (requests/s); above `ceiling` pacing stops.
            burst: seconds of the pace that may be sent at once after an idle moment.
            window: seconds of successes measured to set the pace on a 429.
            min_span: the shortest span that measure is taken over.
        """
        self.budget = budget
        self.clock, self.sleep = clock, sleep
        self.decrease, self.increase, self.probe = decrease, increase, probe
        self.floor, self.ceiling, self.burst = floor, ceiling, burst
        self.window, self.log_every, self.min_span = window, log_every, min_span
        self.rate: float | None = None  # requests/s; None: not paced
        self.limited = 0.0  # rate-limit waiting charged to the budget so far
        self.episodes = 0  # 429 episodes that lowered the pace
        self._lock = threading.Lock()
        self._tokens = 0.0  # of the pace's bucket, as of `_filled_at`
        self._filled_at = -math.inf
        self._paused_until = -math.inf
        self._decreased_at = -math.inf
        self._resumed_at = -math.inf
        self._limited_until = -math.inf
        self._successes: deque[float] = deque()
        self._last_log = -math.inf

    # -- before a request -------------------------------------------------------------

    def acquire(self, waited_until: float = -math.inf) -> float:
        """Block until this thread may send; the instant it was cleared (for `throttled`).

        `waited_until`: the end of a pause this caller has already waited out itself.
        """
        while True:
            with self._lock:
                # The caller slept until `waited_until` already (on this clock, or a fake one).
                now = max(self.clock(), waited_until)
                if self._paused_until > now:
                    wait = self._paused_until - now
                elif self.rate is None:
                    return now
                else:
                    capacity = max(1.0, self.rate * self.burst)
                    self._tokens = min(capacity, self._tokens + max(0.0, now - self._filled_at) * self.rate)
                    self._filled_at = max(self._filled_at, now)
                    # (1e-9: a sleep of exactly the computed wait must find the token, even
                    # where float rounding leaves it a hair short.)
                    if self._tokens >= 1.0 - 1e-9:
                        self._tokens = max(0.0, self._tokens - 1.0)
                        return now
                    # Sleep until the next token at the current pace, then ask again: a
                    # pace that rises or a pause that begins meanwhile applies at once.
                    wait = (1.0 - self._tokens) / self.rate
            self.sleep(wait)

    # -- after a response -------------------------------------------------------------

    def succeeded(self) -> None:
        """A request was answered: measure the pace, and raise it slowly when one is set."""
        with self._lock:
            now = self.clock()
            self._successes.append(now)
            while self._successes and self._successes[0] < now - self.window:
                self._successes.popleft()
            if self.rate is not None:
                # +increase per success: the pace grows by `increase` of itself per second,
                # so it finds a server's limit in seconds whether that is 2 or 200 requests/s.
                grown = self.rate + self.increase
                self.rate = max(grown, self.rate * (1.0 + self.probe)) if self.episodes < 2 else grown
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
            # With nothing answered yet there is nothing to measure a pace from: the pause
            # alone holds everyone back until some requests get through.
            if sent_at > self._decreased_at and (self.rate is not None or self._successes):
                self._decreased_at = now
                self.episodes += 1
                # What the server let through in the last `window` seconds (since the last
                # pause ended, if less): the client asked for more (it drew a 429), so that
                # is the server's rate, plus any burst it had saved. Over at least
                # `min_span`, so a burst alone is not read as a huge rate; too high is
                # corrected by the next episode, too low only slowly.
                start = max(self._resumed_at, now - self.window)
                recent = [t for t in self._successes if t >= start]
                if recent:
                    measured = len(recent) / max(self.min_span, now - start)
                    self.rate = measured if self.rate is None else min(self.rate, measured)
                if self.rate is not None:
                    self.rate = max(self.floor, self.rate * self.decrease)
                    # Resume at the new pace without a burst: a server that just ran dry
                    # refills slowly, and a burst would only draw the next 429.
                    self._tokens, self._filled_at = 0.0, until
                self._resumed_at = until
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
