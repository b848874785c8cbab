"""The retry policy: composed tenacity parts, shared by every request to Invoiced.

    retry   RetryableApiError whose outcome is known (a GET, a 429, a POST never sent)
    wait    the error's Retry-After, else exponential backoff with jitter capped by max_wait,
            its exponent counting failures and bare 429s apart
    stop    failures (5xx, network, bad JSON): after `attempts` of them, or before a backoff
            that would take the call's failure waits past `budget` seconds;
            429s: the server pacing the client, not a failure: they use no attempt and are
            bounded only by the run's rate-limit budget (the client's Pacer)
    log     `api.retry` with status, attempt, wait, method and a credential-free URL

The parts are public so that other callers (the push-back) can compose the same policy.
"""

from __future__ import annotations

import copy
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
from syncd.invoiced.pacing import Pacer, Timeline

T = TypeVar("T")
log = structlog.get_logger("syncd.invoiced")


def is_retryable(exc: BaseException) -> bool:
    """A retryable error whose outcome is known: repeating the request cannot apply it twice."""
    return isinstance(exc, RetryableApiError) and not getattr(exc, "outcome_unknown", False)


def is_throttle(exc: BaseException | None) -> bool:
    """A 429: the server asks the client to slow down; nothing failed."""
    return isinstance(exc, RetryableApiError) and exc.status == 429


def _outcome(retry_state: RetryCallState) -> BaseException | None:
    return retry_state.outcome.exception() if retry_state.outcome else None


def _tally(retry_state: RetryCallState, name: str) -> dict[int, float]:
    # Per-call bookkeeping kept on the call's own state, keyed by attempt so that a stop
    # evaluated twice for one attempt counts it once.
    tally: dict[int, float] = vars(retry_state).setdefault(f"syncd_{name}", {})
    return tally


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
        # Back off by how many of the same kind came before: a 503 after twenty 429s is a
        # first failure, not a twenty-first.
        same = _tally(retry_state, "bare_throttles" if is_throttle(exc) else "failure_backoffs")
        same[retry_state.attempt_number] = 1.0
        state = copy.copy(retry_state)
        state.attempt_number = len(same)
        return float(self.fallback(state))


class StopAfterFailures(stop_base):
    """Stop after `attempts` failed attempts; a 429 is not a failure and is not counted."""

    def __init__(self, attempts: int) -> None:
        self.attempts = attempts

    def __call__(self, retry_state: RetryCallState) -> bool:
        failures = _tally(retry_state, "failures")
        if not is_throttle(_outcome(retry_state)):
            failures[retry_state.attempt_number] = 1.0
        return len(failures) >= self.attempts


class StopOverBudget(stop_base):
    """Stop before a backoff that would take the call's failure waits past `budget` seconds.

    Only waits after failures count: time spent waiting on rate limits is bounded by the
    run's rate-limit budget instead, and each attempt's own time by the request deadline.
    """

    def __init__(self, budget: float) -> None:
        self.budget = budget

    def __call__(self, retry_state: RetryCallState) -> bool:
        if is_throttle(_outcome(retry_state)):
            return False
        waits = _tally(retry_state, "failure_waits")
        waits.pop(retry_state.attempt_number, None)
        if sum(waits.values()) + retry_state.upcoming_sleep > self.budget:
            return True
        waits[retry_state.attempt_number] = retry_state.upcoming_sleep
        return False


class StopOverRateLimitBudget(stop_base):
    """Stop on a 429 once the run has spent its budget for rate-limit waits (see Pacer.spend)."""

    def __init__(self, pacer: Pacer) -> None:
        self.pacer = pacer

    def __call__(self, retry_state: RetryCallState) -> bool:
        if not is_throttle(_outcome(retry_state)):
            return False
        charged = _tally(retry_state, "throttle_waits")
        if retry_state.attempt_number in charged:
            return False
        if not self.pacer.spend(retry_state.upcoming_sleep):
            return True
        charged[retry_state.attempt_number] = retry_state.upcoming_sleep
        return False


def wait_reason(exc: BaseException | None) -> str:
    """Why a request waits, in a few words: "rate limited", "server error 503", ..."""
    if is_throttle(exc):
        return "rate limited"
    status = getattr(exc, "status", None)
    if status is not None:
        return f"server error {status}" if status >= 500 else f"bad response (HTTP {status})"
    cause = getattr(exc, "__cause__", None)
    return f"network error ({type(cause).__name__})" if cause is not None else "network error"


def log_retry(retry_state: RetryCallState) -> None:
    """tenacity `before_sleep`: one structured `api.retry` line per retry.

    429s are logged at debug level: many threads draw them at once, and the client logs
    one `api.waiting` line per pause instead (Pacer.should_log).
    """
    exc = retry_state.outcome.exception() if retry_state.outcome else None
    level = log.debug if is_throttle(exc) else log.warning
    level(
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

    attempts: int = 8  # failures (5xx, network, bad JSON) per request; 429s do not count
    budget: float = 300.0  # seconds of backoff after failures per request
    base: float = 0.5
    max_wait: float = 60.0
    sleep: Callable[[float], None] = time.sleep
    rate_limit_budget: float = 3600.0  # seconds a run may wait on 429s (Pacer.spend)
    request_deadline: float = 120.0  # seconds one attempt may take, body included

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"RetryPolicy.attempts must be at least 1, got {self.attempts}")
        if self.budget < 0 or self.base < 0 or self.max_wait < 0 or self.rate_limit_budget < 0:
            raise ValueError("RetryPolicy.budget, base, max_wait and rate_limit_budget must not be negative")
        if self.request_deadline <= 0:
            raise ValueError("RetryPolicy.request_deadline must be positive")

    def pacer(self) -> Pacer:
        """A fresh Pacer with this policy's `sleep` and rate-limit budget (one per client)."""
        timeline = Timeline(self.sleep)
        return Pacer(budget=self.rate_limit_budget, clock=timeline.now, sleep=timeline.sleep)

    def retrying(
        self,
        on_retry: Callable[[RetryCallState], None] | None = None,
        pacer: Pacer | None = None,
    ) -> Retrying:
        """A fresh tenacity controller (one per call: it holds that call's state).

        Without a `pacer` (one shared by the client), 429s are bounded by `attempts` as
        failures are: nothing else would bound them. With one, every wait goes through
        the pacer's `sleep`, so that its clock sees them.
        """

        def before_sleep(retry_state: RetryCallState) -> None:
            log_retry(retry_state)
            if on_retry is not None:
                on_retry(retry_state)

        stop = (
            StopAfterFailures(self.attempts) | StopOverBudget(self.budget) | StopOverRateLimitBudget(pacer)
            if pacer is not None
            else stop_after_attempt(self.attempts) | StopOverBudget(self.budget)
        )
        return Retrying(
            retry=retry_if_exception(is_retryable),
            wait=WaitRetryAfter(backoff(self.base, self.max_wait)),
            stop=stop,
            before_sleep=before_sleep,
            sleep=pacer.sleep if pacer is not None else self.sleep,
            reraise=True,
        )

    def call(
        self,
        fn: Callable[[], T],
        on_retry: Callable[[RetryCallState], None] | None = None,
        pacer: Pacer | None = None,
    ) -> T:
        """Run `fn` under this policy; the last error is re-raised as itself when it gives up."""
        return self.retrying(on_retry, pacer)(fn)
