"""When a file connector renders its files again during a run (`flush`), besides at its end.

A render rewrites whole files, so its cost grows with the rows kept. A render waits at least
`SHARE` times as long as the next one should take: the last one's time, scaled by the rows
put since (a replaced row counts as one more: at worst a render comes later), so that renders
stay a few per cent of a long run. In a first sync the rows grow about as fast as the run
goes; waiting ten times the last render's time alone rendered every 30 s, a tenth of a
200k-invoice run (CPU per record grew with size). Now, after the first render, that wait
outgrows the run, and `STALEST` periods (or ten renders' time, if longer) bound how old the
files get.
"""

from __future__ import annotations

import time

SHARE = 30
STALEST = 20


class RenderClock:
    """Says when a render during a run is due; told of rows put and of each render."""

    def __init__(self, every: float) -> None:
        self.every = every
        self.last = time.monotonic()  # when the last render began (or the connector opened)
        self.took = 0.0
        self.rendered = 0  # rows the last render wrote
        self.written = 0  # rows put since it began

    def wrote(self, rows: int) -> None:
        """`rows` rows were put (or replaced, or deleted)."""
        self.written += rows

    def due(self) -> bool:
        """Whether `flush` should render now."""
        grown = 1.0 + self.written / max(self.rendered, 1)
        wait = max(self.every, SHARE * self.took * grown)
        return time.monotonic() - self.last >= min(wait, max(STALEST * self.every, 10 * self.took))

    def begin(self) -> None:
        """A render (or the check that nothing changed) begins."""
        self.last = time.monotonic()
        self.written = 0

    def end(self, rendered: int) -> None:
        """The render that began last wrote `rendered` rows."""
        self.took = time.monotonic() - self.last
        self.rendered = rendered
