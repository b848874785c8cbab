"""Push-back outcomes for a counter metric: payments, not re-reads of the same payment."""

from __future__ import annotations

from syncd.pushback.push import STANDING, PushReport


class OutcomeCounter:
    """Turns each run's report into increments of `syncd_pushback_payments_total`.

    A payment that stays already posted, held or dismissed is read again by every run; it
    counts once per process, so the counter tells how many payments, not how many runs.
    """

    def __init__(self) -> None:
        self._seen: dict[str, set[str]] = {outcome: set() for outcome in STANDING}

    def increments(self, report: PushReport) -> dict[str, int]:
        """The increment per outcome for this run."""
        out = {str(k): int(v) for k, v in report.counts.items()}
        for outcome, ids in report.ids.items():
            fresh = ids - self._seen[outcome]
            self._seen[outcome] |= fresh
            out[outcome] = len(fresh)
        return out
