"""Pacing requests within HubSpot's rolling rate-limit window.

HubSpot documents no `Retry-After`. Each response carries `X-HubSpot-RateLimit-Max`,
`-Remaining` and `-Interval-Milliseconds` (a rolling window, 10 s for private apps), and a
429 body names its policy: `TEN_SECONDLY_ROLLING` (a slot frees when a request of the
window ages out) or `DAILY` (nothing frees before midnight). The pacer keeps the times of
its own requests in the window, so it can wait exactly until the oldest one leaves it
instead of backing off blindly into the same window.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping

import structlog

log = structlog.get_logger(__name__)

DEFAULT_INTERVAL = 10.0  # seconds; TEN_SECONDLY_ROLLING


class Pacer:
    """Waits before a request when the window is spent; says how long a 429 should wait."""

    def __init__(self, clock: Callable[[], float], sleep: Callable[[float], None]) -> None:
        self.clock = clock
        self.sleep = sleep
        self.interval = DEFAULT_INTERVAL
        self.remaining: int | None = None  # as of the last response
        self.sent: deque[float] = deque()

    def before(self) -> None:
        """Called before each request: wait when the last response said the window is spent."""
        if self.remaining is not None and self.remaining <= 0:
            wait = self.window_wait()
            log.info("hubspot.paced", wait=round(wait, 3), interval=self.interval)
            self.sleep(wait)
            self.remaining = None
        self.sent.append(self.clock())

    def observe(self, headers: Mapping[str, str]) -> None:
        """Read the window's size and what is left of it from a response's headers."""
        interval = header_number(headers.get("X-HubSpot-RateLimit-Interval-Milliseconds"))
        if interval is not None and interval > 0:
            self.interval = interval / 1000
        remaining = header_number(headers.get("X-HubSpot-RateLimit-Remaining"))
        self.remaining = None if remaining is None else int(remaining)

    def window_wait(self) -> float:
        """Seconds until the oldest of our requests in the window leaves it (the whole window
        when none of ours is in it: other apps of the account spent it)."""
        now = self.clock()
        while self.sent and self.sent[0] <= now - self.interval:
            self.sent.popleft()
        if not self.sent:
            return self.interval
        return max(self.sent[0] + self.interval - now, 0.0)


def header_number(value: str | None) -> float | None:
    """A numeric header value, None when absent or not a number."""
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None
