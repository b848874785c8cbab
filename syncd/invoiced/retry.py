"""The retry policy: composed tenacity parts, shared by every request to Invoiced.

    retry   RetryableApiError whose outcome is known (a GET, a 429, a POST never sent)
    wait    the error's Retry-After, else exponential backoff with jitter capped by max_wait
    stop    after `attempts`, or before a wait that would take the call past `budget` seconds
    log     `api.retry` with status, attempt, wait, method and a credential-free URL

The parts are public so that other callers (the push-back) can compose the same policy.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import structlog
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_random_exponential,
)
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from syncd.errors import RetryableApiError

T = TypeVar("T")
log = structlog.get_logger("syncd.invoiced")


def is_retryable(exc: BaseException) -> bool:
    """A retryable error whose outcome is known: repeating the request cannot apply it twice."""
    return isinstance(exc, RetryableApiError) and not getattr(exc, "outcome_unknown", False)


def backoff(base: float, max_wait: float) -> wait_base:
    """Exponential backoff with "equal jitter": a wait in [e/2, e], e = min(base·2ⁿ⁻¹, max_wait).

    Half fixed, half random: retries of many threads spread out, yet none comes back at once.
    """
    half_base, half_max = base / 2, max_wait / 2
    return wait_exponential(multiplier=half_base, max=half_max) + wait_random_exponential(
        multiplier=half_base, max=half_max
    )


class WaitRetryAfter(wait_base):
    """Wait what the server asked for (`retry_after` on the error), else `fallback`."""

    def __init__(self, fallback: wait_base) -> None:
        self.fallback = fallback

    def __call__(self, retry_state: RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        after = getattr(exc, "retry_after", None)
        if after is not None:
            return max(float(after), 0.0)
        return float(self.fallback(retry_state))


class StopOverBudget(stop_base):
    """Stop before a wait that would take the whole call past `budget` seconds.

    Time spent is the larger of the wall clock and the waits so far, so an injected
    `sleep` (tests) counts its waits just as real sleeping does.
    """

    def __init__(self, budget: float) -> None:
        self.budget = budget

    def __call__(self, retry_state: RetryCallState) -> bool:
        spent = max(retry_state.seconds_since_start or 0.0, retry_state.idle_for)
        return spent + retry_state.upcoming_sleep > self.budget


def log_retry(retry_state: RetryCallState) -> None:
    """tenacity `before_sleep`: one structured `api.retry` line per retry."""
    exc = retry_state.outcome.exception() if retry_state.outcome else None
    log.warning(
        "api.retry",
        status=getattr(exc, "status", None),
        attempt=retry_state.attempt_number,
        wait=round(retry_state.upcoming_sleep, 3),
        method=getattr(exc, "method", None),
        url=getattr(exc, "url", None),
        error=getattr(exc, "message", str(exc)),
    )


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard one request is tried; `sleep` is injectable so tests record waits instead."""

    attempts: int = 8
    budget: float = 300.0
    base: float = 0.5
    max_wait: float = 60.0
    sleep: Callable[[float], None] = time.sleep

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"RetryPolicy.attempts must be at least 1, got {self.attempts}")
        if self.budget < 0 or self.base < 0 or self.max_wait < 0:
            raise ValueError("RetryPolicy.budget, base and max_wait must not be negative")

    def retrying(self, on_retry: Callable[[RetryCallState], None] | None = None) -> Retrying:
        """A fresh tenacity controller (one per call: it holds that call's state)."""

        def before_sleep(retry_state: RetryCallState) -> None:
            log_retry(retry_state)
            if on_retry is not None:
                on_retry(retry_state)

        return Retrying(
            retry=retry_if_exception(is_retryable),
            wait=WaitRetryAfter(backoff(self.base, self.max_wait)),
            stop=stop_after_attempt(self.attempts) | StopOverBudget(self.budget),
            before_sleep=before_sleep,
            sleep=self.sleep,
            reraise=True,
        )

    def call(self, fn: Callable[[], T], on_retry: Callable[[RetryCallState], None] | None = None) -> T:
        """Run `fn` under this policy; the last error is re-raised as itself when it gives up."""
        return self.retrying(on_retry)(fn)
