"""Jobs: what runs on a schedule, and each job's own back-off after failures."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Literal

from syncd.config import Settings

# A failing job waits `every * 2**(n-1)` (jittered) before its next run, but never longer
# than this many intervals nor BACKOFF_MAX_SECONDS: an outage ends, and catch-up should
# not lag it by more than a few intervals.
BACKOFF_INTERVALS = 8
BACKOFF_MAX_SECONDS = 900.0


def backoff(every: float, failures: int, *, rand: random.Random | None = None) -> float:
    """Seconds a job that failed `failures` times in a row waits before it runs again."""
    if failures <= 0:
        return 0.0
    cap = max(every, min(every * BACKOFF_INTERVALS, BACKOFF_MAX_SECONDS))
    base = min(every * 2 ** min(failures - 1, 30), cap)
    # Up to 20% less, so daemons that failed together do not all come back in step.
    jitter: float = (rand or random).random()
    return float(base * (1 - 0.2 * jitter))


@dataclass
class Job:
    """One scheduled job and what it has done so far (read by /healthz and /metrics)."""

    name: str
    kind: Literal["pull", "push"]
    every: int
    stream: str | None = None
    runs: int = 0
    failures: int = 0  # consecutive
    last_error: str | None = None
    last_success: float | None = None  # unix time
    last_ended: float | None = None
    last_duration: float | None = None
    not_before: float = 0.0  # monotonic: back-off ends
    running: bool = False
    cursor_checkpointed: float | None = None  # unix time the stream's cursor was last written
    counts: dict[str, object] = field(default_factory=dict)


def planned_jobs(settings: Settings) -> dict[str, tuple[Literal["pull", "push"], int, str | None]]:
    """Job name -> (kind, interval seconds, stream) for the configuration."""
    d = settings.daemon
    every = {
        "customers": d.customers_every,
        "invoices": d.invoices_every,
        "transactions": d.transactions_every,
    }
    jobs: dict[str, tuple[Literal["pull", "push"], int, str | None]] = {
        name: ("pull", every[name], name) for name in settings.streams.enabled()
    }
    if settings.pushback.enabled:
        jobs["pushback"] = ("push", d.pushback_every, None)
    return jobs
