"""The live view over a daemon's first pull of every stream, when it starts on a terminal.

Pulls run one stream at a time in job threads; they share one view, which closes once each
stream has run once (or the daemon stops). Later runs are the log's business.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from rich.console import Console

from syncd.progress import Progress


class FirstRunView:
    """Hands the view to each stream's first pull; closes it when none is left."""

    def __init__(self, streams: Iterable[str], console: Console | None = None) -> None:
        self.pending = set(streams)
        self.progress = Progress(enabled=True, console=console, label="first sync")
        self._lock = threading.Lock()
        self._open = False

    def start(self) -> None:
        with self._lock:
            if self.pending and not self._open:
                self.progress.__enter__()
                self._open = True

    def for_stream(self, stream: str) -> Progress | None:
        """The view, for the first pull of `stream`; None afterwards."""
        with self._lock:
            return self.progress if self._open and stream in self.pending else None

    def ran(self, stream: str) -> None:
        """`stream`'s first pull is over (done or failed)."""
        with self._lock:
            self.pending.discard(stream)
            last = not self.pending
        if last:
            self.close()

    def close(self) -> None:
        with self._lock:
            if self._open:
                self._open = False
                self.progress.__exit__(None, None, None)
