"""The sandbox's configuration, its runtime fault knobs and its request counters."""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections import Counter
from dataclasses import dataclass


@dataclass
class SandboxConfig:
    """How to seed the sandbox and which faults to inject from the start."""

    seed: int = 7
    customers: int = 100
    invoices: int = 2000
    transactions: int = 500
    latency: float = 0.0  # seconds added to every request
    p429: float = 0.0  # probability of a random 429 (no Retry-After)
    p500: float = 0.0  # probability of a random 500
    p_drop: float = 0.0  # probability the connection is closed before the request is applied
    p_drop_after: float = 0.0  # probability a write is applied and then the connection closed unanswered
    rate_limit: float | None = None  # token bucket: requests per second (None: unlimited)
    burst: int = 10  # token bucket size
    strict_pages: bool = False  # page N needs page N-1 of the same query served shortly before
    edit_rate: float = 0.0  # background edits per second
    events_retention: float | None = None  # seconds events are kept (None: forever)
    honour_idempotency: bool = True  # False: every POST is applied, Idempotency-Key or not
    api_key: str | None = None  # None: a deterministic key derived from the seed (the first account's)
    accounts: int = 1  # Invoiced accounts served, each with its own key, data, knobs and limits

    def key(self, index: int = 0) -> str:
        """The API key of account `index` (0: the first), derived from its seed unless given."""
        if index == 0 and self.api_key:
            return self.api_key
        return "sk_sandbox_" + hashlib.sha256(f"syncd-sandbox-{self.seed + index}".encode()).hexdigest()[:24]

    def account_name(self, index: int) -> str:
        """acct01, acct02, ...: valid `[accounts.NAME]` names, sorted as they are numbered."""
        return f"acct{index + 1:0{max(2, len(str(self.accounts)))}d}"


@dataclass
class Knobs:
    """Fault knobs, mutable while the sandbox serves (tests turn them on and off)."""

    latency: float = 0.0
    p429: float = 0.0
    p500: float = 0.0
    p_drop: float = 0.0
    p_drop_after: float = 0.0
    strict_pages: bool = False
    edit_rate: float = 0.0
    rate_limit: float | None = None
    burst: int = 10
    events_retention: float | None = None
    honour_idempotency: bool = True

    @classmethod
    def from_config(cls, cfg: SandboxConfig) -> Knobs:
        """The knobs a config starts with."""
        return cls(
            latency=cfg.latency,
            p429=cfg.p429,
            p500=cfg.p500,
            p_drop=cfg.p_drop,
            p_drop_after=cfg.p_drop_after,
            strict_pages=cfg.strict_pages,
            edit_rate=cfg.edit_rate,
            rate_limit=cfg.rate_limit,
            burst=cfg.burst,
            events_retention=cfg.events_retention,
            honour_idempotency=cfg.honour_idempotency,
        )


class Stats:
    """What the sandbox served: per (method, path) counts and fault totals. Thread-safe.

    An account's stats pass every count on to `parent`, the sandbox's totals.
    """

    def __init__(self, parent: Stats | None = None) -> None:
        self._lock = threading.Lock()
        self._parent = parent
        self.reset()

    def reset(self) -> None:
        """Start counting from zero."""
        with self._lock:
            self._counts: Counter[tuple[str, str]] = Counter()
            self.total = 0
            self.served_429 = 0
            self.served_500 = 0
            self.dropped = 0
            self.edits = 0

    def request(self, method: str, path: str) -> None:
        """Count one request as it arrives."""
        with self._lock:
            self._counts[(method, path)] += 1
            self.total += 1
        if self._parent is not None:
            self._parent.request(method, path)

    def add(self, name: str, n: int = 1) -> None:
        """Add to one of the totals (served_429, served_500, dropped, edits)."""
        with self._lock:
            setattr(self, name, getattr(self, name) + n)
        if self._parent is not None:
            self._parent.add(name, n)

    def count(self, method: str, path: str) -> int:
        """Requests received for e.g. ("GET", "/invoices")."""
        with self._lock:
            return self._counts[(method.upper(), path.rstrip("/") or "/")]


class TokenBucket:
    """A token bucket read from the knobs on every call, so its rate can change at runtime."""

    def __init__(self, knobs: Knobs) -> None:
        self._knobs = knobs
        self._lock = threading.Lock()
        self._tokens: float | None = None
        self._last = time.monotonic()

    def take(self) -> float | None:
        """None when a token was taken, else the seconds until one will be available."""
        rate, burst = self._knobs.rate_limit, max(1, self._knobs.burst)
        if not rate or rate <= 0:
            return None
        with self._lock:
            now = time.monotonic()
            tokens = burst if self._tokens is None else self._tokens
            tokens = min(float(burst), tokens + (now - self._last) * rate)
            self._last = now
            if tokens >= 1:
                self._tokens = tokens - 1
                return None
            self._tokens = tokens
            return (1 - tokens) / rate


def retry_after_header(seconds: float) -> str:
    """Retry-After in whole seconds, never 0 (a client would retry at once and be refused again)."""
    return str(max(1, math.ceil(seconds)))
