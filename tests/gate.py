"""Tie kill points to progress: the sandbox answers only so many requests, then holds the rest."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

# (method, path, query) -> whether the gate counts (and may hold) this request
Counts = Callable[[str, str, str], bool]


class RequestGate:
    """Lets `allow(n)` requests through the sandbox, holds every later one until `release()`.

    A process stopped once `reached()` has read at most n answers, on a slow machine and on a
    fast one alike: waiting a random while before a kill moves the kill point within its work,
    never past it. `counts` limits the gate to some requests (one stream's pages); the others
    pass. It wraps the sandbox's `respond`, so a held request has been received, not answered.
    """

    def __init__(self, sandbox: Any, counts: Counts | None = None) -> None:
        self._counts = counts
        self._lock = threading.Lock()
        self._open = threading.Event()
        self._open.set()
        self.admitted = 0
        self.limit: int | None = None
        respond = sandbox.respond

        def answer(method: str, path: str, query: str, *rest: Any) -> Any:
            if self._counts is None or self._counts(method, path, query):
                self._enter()
            return respond(method, path, query, *rest)

        sandbox.respond = answer

    def _enter(self) -> None:
        with self._lock:
            self.admitted += 1
            held = self.limit is not None and self.admitted > self.limit
        if held:
            self._open.wait(600)

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
