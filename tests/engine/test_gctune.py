"""A sync collects garbage less often, and leaves the collector as it found it."""

from __future__ import annotations

import gc
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest

from syncd import gctune, registry
from syncd.engine import run_sync
from syncd.plugin import Connector, MappedRecord, Rejection
from tests.engine.helpers import CSV_MAPPING, settings_for


class WatchingConnector(Connector):
    """Notes the collector's settings each time it is handed records."""

    name: ClassVar[str] = "watching"
    seen: ClassVar[list[tuple[int, int]]] = []

    def write(self, stream: str, records: Sequence[MappedRecord]) -> list[Rejection]:
        self.seen.append((gc.get_threshold()[0], gc.get_freeze_count()))
        return []

    def flush(self) -> None:
        pass


@pytest.fixture
def watching(monkeypatch: pytest.MonkeyPatch) -> type[WatchingConnector]:
    real = registry.connector_class

    def lookup(name: str, *, config_path: str | None = None) -> type[Connector]:
        return WatchingConnector if name == "watching" else real(name, config_path=config_path)

    monkeypatch.setattr(registry, "connector_class", lookup)
    WatchingConnector.seen = []
    return WatchingConnector


def test_a_sync_runs_with_fewer_collections_and_restores_them(
    make_sandbox: Any, tmp_path: Path, watching: type[WatchingConnector]
) -> None:
    sandbox = make_sandbox(customers=3, invoices=5, transactions=0)
    settings = settings_for(
        sandbox,
        f"sqlite:///{tmp_path / 's.db'}",
        tmp_path / "out",
        connectors={"watching": {"enabled": True, "mapping": str(CSV_MAPPING)}},
    )
    before = gc.get_threshold()
    frozen = gc.get_freeze_count()

    report = run_sync(settings)

    assert report.ok, report.errors()
    assert watching.seen, "the connector was handed no records"
    assert all(threshold >= gctune.YOUNG_THRESHOLD for threshold, _ in watching.seen)
    # What existed before the run (modules, settings) is frozen: the collector skips it.
    assert all(count > frozen for _, count in watching.seen)
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == frozen


def test_the_setting_holds_until_the_last_of_concurrent_runs_ends() -> None:
    before = gc.get_threshold()
    first_in, second_out, first_out = threading.Event(), threading.Event(), threading.Event()
    during: list[int] = []

    def first() -> None:
        with gctune.sync_collection():
            first_in.set()
            second_out.wait(10)
            during.append(gc.get_threshold()[0])  # the other run ended: still tuned for this one
        first_out.set()

    thread = threading.Thread(target=first)
    thread.start()
    assert first_in.wait(10)
    with gctune.sync_collection():
        assert gc.get_threshold()[0] >= gctune.YOUNG_THRESHOLD
    second_out.set()
    thread.join(10)
    assert during == [max(before[0], gctune.YOUNG_THRESHOLD)]
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_a_failed_run_restores_the_collector() -> None:
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), gctune.sync_collection():
        raise RuntimeError("boom")
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
