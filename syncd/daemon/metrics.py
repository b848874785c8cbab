"""A tiny thread-safe metrics registry rendered in the Prometheus text format (0.0.4).

Only what the daemon needs: counters and gauges with labels, a fixed catalogue of
names (so a typo fails loudly), and a bounded label space (streams, connectors, jobs,
outcomes), so memory stays flat however long the daemon runs.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

Labels = tuple[tuple[str, str], ...]
Number = int | float

# name -> (type, help)
CATALOGUE: dict[str, tuple[str, str]] = {
    "syncd_up": ("gauge", "1 while the daemon runs."),
    "syncd_healthy": ("gauge", "1 when /healthz says ok, 0 when degraded."),
    "syncd_start_time_seconds": ("gauge", "When the daemon started (unix time)."),
    "syncd_records_pulled_total": ("counter", "Records fetched from Invoiced, per stream."),
    "syncd_records_changed_total": ("counter", "Fetched records whose content changed, per stream."),
    "syncd_records_deleted_total": ("counter", "Deletions delivered, per stream."),
    "syncd_records_delivered_total": ("counter", "Records delivered, per stream and connector."),
    "syncd_records_rejected_total": ("counter", "Records refused (dead-lettered), per stream and connector."),
    "syncd_records_redelivered_total": (
        "counter",
        "Records re-delivered after a mapping change, per connector.",
    ),
    "syncd_job_runs_total": ("counter", "Job runs, per job and outcome (ok, failed, stopped)."),
    "syncd_job_last_success_timestamp_seconds": ("gauge", "When each job last succeeded (unix time)."),
    "syncd_job_last_run_timestamp_seconds": ("gauge", "When each job last ended (unix time)."),
    "syncd_job_last_duration_seconds": ("gauge", "How long each job's last run took."),
    "syncd_job_consecutive_failures": ("gauge", "Failed runs in a row, per job."),
    "syncd_job_backoff_seconds": ("gauge", "Current back-off before a failing job runs again."),
    "syncd_cursor_timestamp_seconds": (
        "gauge",
        "Each stream's cursor: records updated before it are synced.",
    ),
    "syncd_cursor_age_seconds": ("gauge", "Seconds since each stream's cursor was last checkpointed."),
    "syncd_api_requests_total": ("counter", "HTTP requests sent to Invoiced."),
    "syncd_api_retries_total": ("counter", "Requests retried by the client."),
    "syncd_api_throttled_total": ("counter", "429 Too Many Requests answers."),
    "syncd_api_server_errors_total": ("counter", "5xx answers."),
    "syncd_api_transport_errors_total": ("counter", "Network failures (refused, reset, timeout)."),
    "syncd_pushback_payments_total": ("counter", "Push-back payments, per outcome."),
    "syncd_dead_letters": ("gauge", "Records currently in the dead-letter table."),
    "syncd_errors": ("gauge", "Refused records and payments not ignored (`syncd errors`)."),
    "syncd_config_reloads_total": ("counter", "Configuration reloads, per outcome (ok, refused)."),
    "syncd_config_last_reload_ok": (
        "gauge",
        "0 when the last reload was refused (the old config is in use).",
    ),
    "syncd_store_up": ("gauge", "1 when the last lease renewal reached the checkpoint store."),
}


def _labels(labels: Mapping[str, str] | None) -> Labels:
    return tuple(sorted((labels or {}).items()))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: Number) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)


class Metrics:
    """Counters and gauges by (name, labels)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, dict[Labels, Number]] = {name: {} for name in CATALOGUE}

    def _check(self, name: str) -> dict[Labels, Number]:
        if name not in CATALOGUE:
            raise KeyError(f"unknown metric {name!r}")
        return self._values[name]

    def inc(self, name: str, amount: Number = 1, **labels: str) -> None:
        """Add to a counter."""
        with self._lock:
            series = self._check(name)
            key = _labels(labels)
            series[key] = series.get(key, 0) + amount

    def set(self, name: str, value: Number, **labels: str) -> None:
        """Set a gauge (or a counter mirrored from elsewhere)."""
        with self._lock:
            self._check(name)[_labels(labels)] = value

    def get(self, name: str, **labels: str) -> Number | None:
        with self._lock:
            return self._check(name).get(_labels(labels))

    def render(self) -> str:
        """The Prometheus text exposition of every metric that has a value."""
        lines: list[str] = []
        with self._lock:
            for name, (kind, help_text) in CATALOGUE.items():
                series = self._values[name]
                if not series:
                    continue
                lines.append(f"# HELP {name} {help_text}")
                lines.append(f"# TYPE {name} {kind}")
                for labels, value in sorted(series.items()):
                    tag = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
                    lines.append(f"{name}{{{tag}}} {_number(value)}" if tag else f"{name} {_number(value)}")
        return "\n".join(lines) + "\n"
