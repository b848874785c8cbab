"""Progress on a terminal (rich), structured log lines elsewhere."""

from __future__ import annotations

import threading
import time
from types import TracebackType

import structlog
from rich.progress import Progress as RichProgress
from rich.progress import SpinnerColumn, TextColumn, TimeElapsedColumn

log = structlog.get_logger(__name__)


class Progress:
    """Counts records per stream; shows bars when enabled, logs every few seconds otherwise."""

    def __init__(self, *, enabled: bool, log_every: float = 10.0) -> None:
        self.enabled = enabled
        self.counts: dict[str, int] = {}
        self._rich: RichProgress | None = None
        self._tasks: dict[str, object] = {}
        self._log_every = log_every
        self._last_log = time.monotonic()
        self.waits = 0  # waits before a retry, over all threads
        self.waited = 0.0  # their seconds, summed
        self.last_wait: tuple[float, str] | None = None  # (seconds, reason) of the latest
        self._wait_lock = threading.Lock()

    def __enter__(self) -> Progress:
        if self.enabled:
            self._rich = RichProgress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                TextColumn("{task.completed} records"),
                TimeElapsedColumn(),
                transient=False,
            )
            self._rich.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._rich is not None:
            self._rich.stop()

    def advance(self, stream: str, n: int) -> None:
        """Count `n` more records read for `stream`."""
        self.counts[stream] = self.counts.get(stream, 0) + n
        if self._rich is not None:
            if stream not in self._tasks:
                self._tasks[stream] = self._rich.add_task(stream, total=None)
            self._rich.update(self._tasks[stream], advance=n)  # type: ignore[arg-type]
        elif time.monotonic() - self._last_log >= self._log_every:
            self._last_log = time.monotonic()
            log.info("sync.progress", records=dict(self.counts), waits=self.waits, waited=round(self.waited, 1))

    def waiting(self, seconds: float, reason: str) -> None:
        """The client is about to wait `seconds` before a retry, e.g. (2.0, "rate limited").

        Called from fetcher threads (InvoicedClient.on_wait); the JSON log has the
        client's own `api.waiting` line, so this only records.
        """
        with self._wait_lock:
            self.waits += 1
            self.waited += seconds
            self.last_wait = (seconds, reason)
