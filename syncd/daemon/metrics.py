"""The daemon's and workers' metrics: prometheus-client, one registry per `Metrics`.

Each `Metrics` owns a `CollectorRegistry` (never the library's global one), so tests and
several daemons in one process keep apart. The catalogue below is fixed: a name not in it
fails loudly, and each metric has fixed label names, so the label space stays bounded
(accounts, streams, connectors, jobs, outcomes) and memory flat however long a process runs.

Every per-account metric carries an `account` label: the `account` given to the call, else
the one the `Metrics` was made for ("default" for a single-account configuration). Labels
are names from the configuration, never a credential.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import NamedTuple

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

Number = int | float
# What /metrics answers with: generate_latest writes the text format 0.0.4.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
ACCOUNT = "account"


class Spec(NamedTuple):
    kind: str  # "counter" or "gauge"
    help: str
    labels: tuple[str, ...] = ()  # besides `account` when `per_account`
    per_account: bool = True


# name -> spec. Counter names end in _total as exposed (prometheus-client adds the suffix).
CATALOGUE: dict[str, Spec] = {
    "syncd_up": Spec("gauge", "1 while the daemon runs.", per_account=False),
    "syncd_healthy": Spec("gauge", "1 when /healthz says ok, 0 when degraded.", per_account=False),
    "syncd_start_time_seconds": Spec("gauge", "When the daemon started (unix time).", per_account=False),
    "syncd_records_pulled_total": Spec("counter", "Records fetched from Invoiced, per stream.", ("stream",)),
    "syncd_records_changed_total": Spec(
        "counter", "Fetched records whose content changed, per stream.", ("stream",)
    ),
    "syncd_records_deleted_total": Spec("counter", "Deletions delivered, per stream.", ("stream",)),
    "syncd_records_delivered_total": Spec(
        "counter", "Records delivered, per stream and connector.", ("stream", "connector")
    ),
    "syncd_records_rejected_total": Spec(
        "counter", "Records refused (dead-lettered), per stream and connector.", ("stream", "connector")
    ),
    "syncd_records_redelivered_total": Spec(
        "counter", "Records re-delivered after a mapping change, per connector.", ("connector",)
    ),
    "syncd_job_runs_total": Spec(
        "counter", "Job runs, per job and outcome (ok, failed, stopped).", ("job", "outcome")
    ),
    "syncd_job_last_success_timestamp_seconds": Spec(
        "gauge", "When each job last succeeded (unix time).", ("job",)
    ),
    "syncd_job_last_run_timestamp_seconds": Spec("gauge", "When each job last ended (unix time).", ("job",)),
    "syncd_job_last_duration_seconds": Spec("gauge", "How long each job's last run took.", ("job",)),
    "syncd_job_consecutive_failures": Spec("gauge", "Failed runs in a row, per job.", ("job",)),
    "syncd_job_backoff_seconds": Spec("gauge", "Current back-off before a failing job runs again.", ("job",)),
    "syncd_cursor_timestamp_seconds": Spec(
        "gauge", "Each stream's cursor: records updated before it are synced.", ("stream",)
    ),
    "syncd_cursor_age_seconds": Spec(
        "gauge", "Seconds since each stream's cursor was last checkpointed.", ("stream",)
    ),
    "syncd_api_requests_total": Spec("counter", "HTTP requests sent to Invoiced."),
    "syncd_api_retries_total": Spec("counter", "Requests retried by the client."),
    "syncd_api_throttled_total": Spec("counter", "429 Too Many Requests answers."),
    "syncd_api_server_errors_total": Spec("counter", "5xx answers."),
    "syncd_api_transport_errors_total": Spec("counter", "Network failures (refused, reset, timeout)."),
    "syncd_pushback_payments_total": Spec("counter", "Push-back payments, per outcome.", ("outcome",)),
    "syncd_dead_letters": Spec("gauge", "Records currently in the dead-letter table."),
    "syncd_errors": Spec("gauge", "Refused records and payments not ignored (`syncd errors`)."),
    "syncd_config_reloads_total": Spec(
        "counter", "Configuration reloads, per outcome (ok, refused).", ("outcome",), per_account=False
    ),
    "syncd_config_last_reload_ok": Spec(
        "gauge", "0 when the last reload was refused (the old config is in use).", per_account=False
    ),
    "syncd_store_up": Spec("gauge", "1 when the last lease renewal reached the checkpoint store."),
}


class Metrics:
    """Counters and gauges by (name, labels), exposed by `render()`."""

    def __init__(self, account: str = "default") -> None:
        """`account`: the label of per-account metrics when a call names none."""
        self.account = account
        self.registry = CollectorRegistry(auto_describe=True)
        self._lock = threading.Lock()
        self._metrics: dict[str, Counter | Gauge] = {}
        self._mirrored: dict[tuple[str, tuple[str, ...]], float] = {}

    def _series(self, name: str, labels: dict[str, str]) -> tuple[Counter | Gauge, tuple[str, ...]]:
        spec = CATALOGUE.get(name)
        if spec is None:
            raise KeyError(f"unknown metric {name!r}")
        if spec.per_account:
            labels.setdefault(ACCOUNT, self.account)
        names = ((ACCOUNT,) if spec.per_account else ()) + spec.labels
        if set(labels) != set(names):
            raise KeyError(
                f"metric {name!r} takes labels {', '.join(names) or 'none'}, got {', '.join(labels)}"
            )
        with self._lock:
            metric = self._metrics.get(name)
            if metric is None:
                # Registered on first use: a metric nothing has recorded is not exported
                # (an unlabelled gauge would otherwise read 0 before it means anything).
                kind = Counter if spec.kind == "counter" else Gauge
                metric = self._metrics[name] = kind(name, spec.help, names, registry=self.registry)
        return metric, tuple(str(labels[k]) for k in names)

    def inc(self, name: str, amount: Number = 1, **labels: str) -> None:
        """Add to a counter (or a gauge)."""
        metric, values = self._series(name, labels)
        child = metric.labels(*values) if values else metric
        child.inc(amount)

    def set(self, name: str, value: Number, **labels: str) -> None:
        """Set a gauge, or mirror a counter kept elsewhere (the client's request counts).

        A mirrored counter moves by the difference from the last value set; a lower value
        (its source restarted) is taken as the new base, so the counter never goes back.
        """
        metric, values = self._series(name, labels)
        child = metric.labels(*values) if values else metric
        if isinstance(child, Gauge):
            child.set(value)
            return
        with self._lock:
            last = self._mirrored.get((name, values), 0.0)
            self._mirrored[(name, values)] = float(value)
            if value > last:
                child.inc(value - last)

    def get(self, name: str, **labels: str) -> Number | None:
        """The current value of one series, None when it has none yet."""
        self._series(name, labels)  # checks the name and fills in the account
        return self.registry.get_sample_value(name, labels)

    def render(self) -> str:
        """The Prometheus text exposition (0.0.4) of every series that has a value."""
        return generate_latest(_WithoutCreated(self.registry)).decode("utf-8")


class _WithoutCreated(Collector):
    """The registry's families without the `_created` series prometheus-client adds to each
    counter: in the text format they are one more gauge per series, which nothing of syncd's
    needs (Prometheus detects counter resets by themselves)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterator[Metric]:
        for family in self.registry.collect():
            family.samples = [s for s in family.samples if not s.name.endswith("_created")]
            yield family
