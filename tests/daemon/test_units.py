"""Daemon parts in-process: back-off, metrics text, health reasons, job exclusivity, reload."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from syncd.config import Settings, load_settings
from syncd.daemon import Daemon
from syncd.daemon import reload as reload_mod
from syncd.daemon.jobs import Job, backoff, planned_jobs
from syncd.daemon.metrics import Metrics
from tests.daemon.helpers import write_config, write_mapping


def test_backoff_doubles_per_failure_with_jitter_and_a_cap() -> None:
    rand = random.Random(1)
    assert backoff(60, 0) == 0
    for failures, base in [(1, 60), (2, 120), (3, 240), (4, 480), (5, 480), (20, 480)]:
        for _ in range(20):
            wait = backoff(60, failures, rand=rand)
            assert 0.8 * base <= wait <= base, (failures, wait)
    assert backoff(300, 10, rand=rand) <= 900  # never more than 15 minutes
    assert backoff(3600, 3, rand=rand) >= 0.8 * 3600  # but at least one interval


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_render_prometheus_text_labelled_by_account() -> None:
    m = Metrics(account="acme")
    m.inc("syncd_records_pulled_total", 5, stream="invoices")
    m.inc("syncd_records_pulled_total", 2, stream="invoices")
    m.inc("syncd_records_pulled_total", 4, stream="invoices", account="globex")
    m.inc("syncd_records_delivered_total", 3, stream="customers", connector='odd"name')
    m.set("syncd_job_last_duration_seconds", 1.5, job="invoices")
    m.set("syncd_up", 1.0)
    m.inc("syncd_config_reloads_total", outcome="ok")
    text = m.render()
    assert "# TYPE syncd_records_pulled_total counter\n" in text
    assert (
        'syncd_records_delivered_total{account="acme",connector="odd\\"name",stream="customers"} 3.0\n'
        in text
    )
    samples = _samples(text)
    assert samples == {
        ("syncd_records_pulled_total", frozenset({("account", "acme"), ("stream", "invoices")})): 7,
        ("syncd_records_pulled_total", frozenset({("account", "globex"), ("stream", "invoices")})): 4,
        (
            "syncd_records_delivered_total",
            frozenset({("account", "acme"), ("stream", "customers"), ("connector", 'odd"name')}),
        ): 3,
        ("syncd_job_last_duration_seconds", frozenset({("account", "acme"), ("job", "invoices")})): 1.5,
        ("syncd_up", frozenset()): 1,  # the process's own metrics carry no account
        ("syncd_config_reloads_total", frozenset({("outcome", "ok")})): 1,
    }
    assert "syncd_dead_letters" not in text  # nothing recorded, nothing exported
    assert m.get("syncd_records_pulled_total", stream="invoices") == 7
    assert m.get("syncd_records_pulled_total", stream="invoices", account="globex") == 4
    with pytest.raises(KeyError):
        m.inc("syncd_typo_total")
    with pytest.raises(KeyError):  # the label space is fixed per metric
        m.inc("syncd_records_pulled_total", stream="invoices", api_key="k")


def test_metrics_of_two_instances_never_mix_and_a_mirrored_counter_never_goes_back() -> None:
    a, b = Metrics(), Metrics()
    a.set("syncd_api_requests_total", 10)
    a.set("syncd_api_requests_total", 15)
    b.set("syncd_api_requests_total", 3)
    assert (a.get("syncd_api_requests_total"), b.get("syncd_api_requests_total")) == (15, 3)
    a.set("syncd_api_requests_total", 2)  # its source restarted: counted on from there
    a.set("syncd_api_requests_total", 4)
    assert a.get("syncd_api_requests_total") == 17


def _daemon(**daemon: Any) -> Daemon:
    return Daemon(Settings(daemon={"failures_degraded": 3, "stale_cursor_after": 600, **daemon}))


class WallClock:
    """Stands in for `time` in the daemon: its wall clock moves only when a test moves it."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return time.monotonic()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> WallClock:
    """The daemon's wall clock, frozen: ages and outages are what the test says, however slow it runs."""
    fake = WallClock()
    monkeypatch.setattr("syncd.daemon.service.time", fake)
    return fake


def test_health_degrades_on_repeated_failures_stale_cursors_and_store_loss(clock: WallClock) -> None:
    d = _daemon()
    d.jobs = {"invoices": Job("invoices", "pull", 60, "invoices"), "pushback": Job("pushback", "push", 60)}
    d.jobs["invoices"].cursor_checkpointed = clock.now
    assert d.health() == (True, [], [])
    d.jobs["pushback"].failures, d.jobs["pushback"].last_error = 2, "HTTP 503"
    assert d.health()[0]
    d.jobs["pushback"].failures = 3
    healthy, reasons, _ = d.health()
    assert not healthy and reasons == ["job pushback failed 3 times in a row: HTTP 503"]
    d.jobs["pushback"].failures = 0
    d.started_at = clock.now - 1000
    d.jobs["invoices"].cursor_checkpointed = clock.now - 700
    healthy, reasons, _ = d.health()
    assert not healthy and reasons[0].startswith("cursor of invoices has not advanced for 700 s")
    assert "daemon.stale_cursor_after = 600" in reasons[0]
    d.jobs["invoices"].cursor_checkpointed = clock.now
    d.store_down_since = clock.now - 30
    d.reload_warning = "config reload refused, ..."
    healthy, reasons, warnings = d.health()
    assert not healthy and reasons == ["checkpoint store unreachable for 30 s"]
    assert warnings == ["config reload refused, ..."]
    assert d.metrics.get("syncd_healthy") == 0


def test_a_job_never_runs_twice_at_once_nor_during_backoff_nor_without_a_fresh_lease() -> None:
    d = _daemon()
    d.jobs = {"invoices": Job("invoices", "pull", 1, "invoices")}
    release = threading.Event()
    calls: list[str] = []

    def slow(job: Job) -> str:
        calls.append(job.name)
        release.wait(60)
        job.running = False
        return "ok"

    d.run_job = slow  # type: ignore[method-assign]
    d.launch("invoices")
    assert calls == []  # the lease was never renewed: no job may start
    d.lease_valid_until = time.monotonic() + 60
    d.launch("invoices")
    d.launch("invoices")
    d.launch("invoices")
    release.set()
    d._threads["invoices"].join(60)
    assert calls == ["invoices"]
    d.jobs["invoices"].not_before = time.monotonic() + 60
    d.launch("invoices")
    assert calls == ["invoices"]
    d.jobs["invoices"].not_before = 0.0
    d.launch("invoices")
    d._threads["invoices"].join(60)
    assert calls == ["invoices", "invoices"]


def test_planned_jobs_follow_streams_schedules_and_pushback_switch() -> None:
    settings = Settings(
        streams={"customers": {"enabled": False}},
        daemon={"invoices_every": 7, "pushback_every": 9},
        pushback={"enabled": True},
    )
    assert planned_jobs(settings) == {
        "invoices": ("pull", 7, "invoices"),
        "transactions": ("pull", 300, "transactions"),
        "pushback": ("push", 9, None),
    }
    assert "pushback" not in planned_jobs(Settings(pushback={"enabled": False}))


def test_reload_applies_a_valid_edit_and_keeps_the_last_good_one_on_error(tmp_path: Path) -> None:
    class Sb:
        url, api_key = "http://127.0.0.1:9", "sk_test_key"

    mapping, config = tmp_path / "map.toml", tmp_path / "syncd.toml"
    write_mapping(mapping)
    write_config(config, Sb(), store=f"sqlite:///{tmp_path / 's.db'}", out=tmp_path / "out", mapping=mapping)
    d = Daemon(load_settings(config), config)
    d.loaded = reload_mod.build(d.settings, config)
    d._watcher = reload_mod.Watcher(d.loaded.files)
    d._plan(d.settings)
    assert mapping.resolve() in d.loaded.files and config.resolve() in d.loaded.files
    first = d.loaded.mappings["csv"].fingerprint

    write_mapping(mapping, name_column="customer_name")
    assert d._watcher.changed() == [mapping.resolve()]
    assert d.reload("file changed")
    assert d.loaded.mappings["csv"].fingerprint != first
    good = d.loaded

    mapping.write_text("[tables.customers\n", encoding="utf-8")
    assert not d.reload("SIGHUP")
    assert d.loaded is good
    assert d.reload_warning is not None and str(mapping) in d.reload_warning
    assert d.metrics.get("syncd_config_reloads_total", outcome="refused") == 1

    write_mapping(mapping)
    text = config.read_text().replace("customers_every = 1", "customers_every = 7")
    config.write_text(text, encoding="utf-8")
    assert d.reload("SIGHUP")
    assert d.reload_warning is None
    assert d.jobs["customers"].every == 7
    assert {next(iter(j.tags)): j.interval for j in d.scheduler.get_jobs()}["customers"] == 7


class FlakyLease:
    """Stands in for the lease: renewals fail the way a lost store or a takeover does."""

    def __init__(self, error: Exception | None) -> None:
        self.error = error
        self.renewals = 0

    def renew(self) -> None:
        self.renewals += 1
        if self.error is not None:
            raise self.error

    def release(self) -> None:
        pass


def _beating(d: Daemon, lease: FlakyLease) -> threading.Thread:
    d.lease = lease  # type: ignore[assignment]
    d.heartbeat_every = 0.05
    thread = threading.Thread(target=d._beat, daemon=True)
    thread.start()
    return thread


def _until(check: Any, what: str) -> None:
    deadline = time.monotonic() + 60  # generous: returns as soon as `check` holds
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_store_unreachable_longer_than_configured_stops_with_exit_3(clock: WallClock) -> None:
    from syncd.daemon import EXIT_STORE
    from syncd.errors import StoreError

    d = _daemon(store_unreachable_exit=60)
    lease = FlakyLease(StoreError("checkpoint store unreachable: connection refused"))
    thread = _beating(d, lease)
    _until(lambda: lease.renewals >= 3, "three failed renewals")
    assert not d.stop_event.is_set()  # short blips are tolerated
    healthy, reasons, _ = d.health()
    assert not healthy and reasons == ["checkpoint store unreachable for 0 s"]
    assert d.metrics.get("syncd_store_up") == 0
    clock.now += 59
    seen = lease.renewals
    _until(lambda: lease.renewals >= seen + 2, "two more failed renewals")
    assert not d.stop_event.is_set()
    clock.now += 1
    thread.join(60)
    assert d.stop_event.is_set() and d.exit_code == EXIT_STORE
    assert (
        d.exit_reason is not None
        and "unreachable for 60 s (daemon.store_unreachable_exit = 60)" in d.exit_reason
    )


def test_store_back_in_time_clears_the_outage() -> None:
    from syncd.errors import StoreError

    d = _daemon(store_unreachable_exit=60)
    lease = FlakyLease(StoreError("down"))
    thread = _beating(d, lease)
    _until(lambda: d.store_down_since is not None, "the outage to be noticed")
    lease.error = None
    renewed = lease.renewals
    _until(lambda: lease.renewals >= renewed + 2, "two good renewals")
    assert d.store_down_since is None and d.metrics.get("syncd_store_up") == 1
    d.request_stop()
    thread.join(60)
    assert d.exit_code == 0


def test_a_lease_taken_over_stops_the_daemon_with_exit_5() -> None:
    from syncd.daemon import EXIT_LEASE_LOST
    from syncd.daemon.lock import LeaseLost

    d = _daemon()
    thread = _beating(d, FlakyLease(LeaseLost("the daemon lease was taken over (now held by host b)")))
    thread.join(60)
    assert d.exit_code == EXIT_LEASE_LOST and "host b" in (d.exit_reason or "")
