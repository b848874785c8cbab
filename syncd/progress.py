"""The live progress view on a terminal (rich); a periodic `sync.progress` log line elsewhere.

    invoices   ━━━━━━━━━━━━━━╸━━━━━━━━━━   4,200/8,000   52%   1,210 rec/s   ETA 0:00:03
    customers  ━━━━━━━━━━━━━━━━━━━━━━━━━     500/500    100%     830 rec/s   done
    csv: 4,700 written, 3 refused
    waiting 2 s: rate limited

Totals come from X-Total-Count (`WalkPage.expected`, summed over a stream's date windows);
without one a stream shows its count alone. Calls arrive from the delivery thread
(`advance`) and the fetcher threads (`waiting`); rich redraws from its own thread.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from syncd import log as syncd_log

if TYPE_CHECKING:  # rich is imported when the view is drawn: a run without one (the library) needs none
    from rich.console import Console, RenderableType
    from rich.live import Live

log = structlog.get_logger(__name__)

# Log events the view shows in place: on a terminal they go to the log file only.
SHOWN_IN_VIEW = ("api.retry",)


class StreamOutcome(Protocol):
    """What `finish` reads of a stream's report (`syncd.delivery.StreamReport`)."""

    fetched: int
    error: str | None


@dataclass
class _StreamState:
    started: float
    last: float | None = None  # when the latest page was delivered
    done: int = 0
    walks: dict[str, int | None] = field(default_factory=dict)  # partition -> expected records
    written: dict[str, int] = field(default_factory=dict)  # connector -> records delivered
    refused: dict[str, int] = field(default_factory=dict)
    finished: float | None = None
    error: str | None = None

    @property
    def total(self) -> int | None:
        known = [n for n in self.walks.values() if n is not None]
        if not known:
            return self.done if self.finished is not None else None
        return max(sum(known), self.done)


def _duration(seconds: float) -> str:
    seconds = max(0, math.ceil(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class Progress:
    """Per-stream counts and totals; drawn live when `enabled`, else logged every `log_every` s."""

    def __init__(
        self,
        *,
        enabled: bool,
        log_every: float = 10.0,
        console: Console | None = None,
        clock: Callable[[], float] = time.monotonic,
        label: str = "starting",
    ) -> None:
        self.enabled = enabled
        self.label = label  # shown until the first stream reports
        self.counts: dict[str, int] = {}
        self._streams: dict[str, _StreamState] = {}
        self._wait: tuple[str, float] | None = None  # reason, clock() when it ends
        self.retries = 0
        self._log_every = log_every
        self._clock = clock
        self._last_log = self._started = clock()
        self._lock = threading.Lock()
        self._console = console
        self._live: Live | None = None
        self.waits = 0  # waits before a retry, over all threads
        self.waited = 0.0  # their seconds, summed
        self.last_wait: tuple[float, str] | None = None  # (seconds, reason) of the latest

    # -- lifecycle ------------------------------------------------------------------
    def __enter__(self) -> Progress:
        if self.enabled:
            from rich.console import Console
            from rich.live import Live

            console = self._console or Console(stderr=True)
            # Log lines written to stderr meanwhile (warnings, errors) are printed above the view.
            self._live = Live(
                self, console=console, refresh_per_second=4, redirect_stdout=False, redirect_stderr=True
            )
            syncd_log.hold(SHOWN_IN_VIEW)
            self._live.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._live is not None:
            self._wait = None
            self._live.stop()  # draws the final state once more
            self._live = None
            syncd_log.hold(())

    # -- events ---------------------------------------------------------------------
    def begin(self, streams: Iterable[str]) -> None:
        """Show these streams from now on; their rates count from now."""
        with self._lock:
            for name in streams:
                self._stream(name)

    def advance(
        self,
        stream: str,
        n: int,
        *,
        partition: str = "",
        expected: int | None = None,
        written: Mapping[str, int] | None = None,
        refused: Mapping[str, int] | None = None,
    ) -> None:
        """Count `n` more records read for `stream`.

        `expected` is what the walk of `partition` will read in all (`WalkPage.expected`);
        `written`/`refused` are the stream's running totals per connector.
        """
        with self._lock:
            self.counts[stream] = self.counts.get(stream, 0) + n
            state = self._stream(stream)
            state.done += n
            state.last = self._clock()
            state.walks[partition] = expected
            if written is not None:
                state.written = dict(written)
            if refused is not None:
                state.refused = dict(refused)
        if self._live is None and self._clock() - self._last_log >= self._log_every:
            self._last_log = self._clock()
            log.info("sync.progress", records=dict(self.counts), waits=self.waits, waited=round(self.waited, 1))

    def waiting(self, seconds: float, reason: str) -> None:
        """A request waits `seconds` before it is tried again (a 429, a 5xx): shown in place.

        Called from fetcher threads (`InvoicedClient.on_wait`); the JSON log has the client's
        own `api.waiting` line, so off a terminal this only counts.
        """
        with self._lock:
            self.retries += 1
            self.waits += 1
            self.waited += seconds
            self.last_wait = (seconds, reason)
            self._wait = (reason, self._clock() + seconds)

    def finish(self, streams: Mapping[str, StreamOutcome]) -> None:
        """Mark streams done (their totals become their counts) or failed."""
        with self._lock:
            for name, outcome in streams.items():
                state = self._stream(name)
                state.finished = state.last or self._clock()
                state.error = outcome.error
                if outcome.error is None:
                    state.walks = {"": state.done}
        if self._live is not None:
            self._live.refresh()

    def _stream(self, name: str) -> _StreamState:
        if name not in self._streams:
            self._streams[name] = _StreamState(started=self._clock())
        return self._streams[name]

    # -- drawing --------------------------------------------------------------------
    def __rich__(self) -> RenderableType:
        return self.render()

    def render(self) -> RenderableType:
        """The view at this instant."""
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        with self._lock:
            now = self._clock()
            grid = Table.grid(padding=(0, 2))
            grid.add_column(no_wrap=True)
            grid.add_column(width=30)
            for justify in ("right", "right", "right", "left"):  # count, percent, rate, ETA
                grid.add_column(justify=justify, no_wrap=True)
            for name, state in self._streams.items():
                grid.add_row(name, *self._row(state, now))
            label = Text(f"{self.label}… {_duration(now - self._started)}", style="dim")
            lines: list[RenderableType] = [grid if self._streams else label]
            written = self._written()
            if written:
                lines.append(Text("   ".join(written), style="dim"))
            retried = f" ({self.retries} retries so far)" if self.retries > 1 else ""
            if self._wait is not None and self._wait[1] > now:
                reason, until = self._wait
                lines.append(Text(f"waiting {math.ceil(until - now)} s: {reason}{retried}", style="yellow"))
            elif self.retries:
                lines.append(Text(f"{self.retries} request(s) retried", style="dim"))
        return Group(*lines)

    def _row(self, state: _StreamState, now: float) -> tuple[Any, ...]:
        from rich.progress_bar import ProgressBar
        from rich.text import Text

        total = state.total
        end = state.finished or now
        elapsed = max(end - state.started, 1e-9)
        rate = state.done / elapsed if state.done else 0.0
        bar = ProgressBar(total=float(total) if total else None, completed=float(state.done), width=30)
        if total == 0:
            bar = ProgressBar(total=1.0, completed=1.0, width=30)
        count = f"{state.done:,}/{total:,}" if total is not None else f"{state.done:,}"
        percent = f"{min(100, 100 * state.done // total)}%" if total else ("100%" if total == 0 else "")
        if state.error is not None:
            status = Text("failed", style="bold red")
        elif state.finished is not None:
            status = Text("done" if state.done else "up to date", style="green")
        elif total is not None and rate > 0:
            status = Text(f"ETA {_duration((total - state.done) / rate)}")
        else:
            status = Text("ETA -:--:--", style="dim")
        return bar, count, percent, f"{rate:,.0f} rec/s", status

    def _written(self) -> list[str]:
        written: dict[str, int] = {}
        refused: dict[str, int] = {}
        for state in self._streams.values():
            for name, n in state.written.items():
                written[name] = written.get(name, 0) + n
            for name, n in state.refused.items():
                refused[name] = refused.get(name, 0) + n
        out = []
        for name in sorted(set(written) | set(refused)):
            line = f"{name}: {written.get(name, 0):,} written"
            if refused.get(name):
                line += f", {refused[name]:,} refused"
            out.append(line)
        return out
