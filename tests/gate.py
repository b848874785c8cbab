"""Tie kill points to progress: the sandbox answers only so many requests, then holds the rest."""

from __future__ import annotations

import threading
import time
from typing import Any


class RequestGate:
    """Lets `allow(n)` requests through the sandbox, holds every later one until `release()`.

    A process killed once `reached()` has read at most n answers, on a slow machine and on a
    fast one alike: waiting a random while before the kill moves the kill point within its
    work, never past it. Installed as the sandbox's latency hook, which runs first in every
    request (a latency of zero is raised to a microsecond so that the hook runs).
    """

    def __init__(self, sandbox: Any) -> None:
        self._lock = threading.Lock()
        self._open = threading.Event()
        self._open.set()
        self.admitted = 0
        self.limit: int | None = None
        self._latency = sandbox.knobs.latency
        sandbox.knobs.latency = self._latency or 1e-6
        sandbox.sleep = self._enter

    def _enter(self, _: float) -> None:
        with self._lock:
            self.admitted += 1
            held = self.limit is not None and self.admitted > self.limit
        if held:
            self._open.wait(600)
        if self._latency:
            time.sleep(self._latency)

    def allow(self, n: int) -> None:
        """From now on, answer `n` more requests and hold the rest."""
        with self._lock:
            self.admitted, self.limit = 0, n
            self._open.clear()

    def reached(self) -> bool:
        """True once the allowed requests have all arrived."""
        with self._lock:
            return self.limit is not None and self.admitted >= self.limit

    def release(self) -> None:
        """Answer everything again, the held requests first."""
        with self._lock:
            self.limit = None
        self._open.set()
