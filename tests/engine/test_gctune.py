"""During a sync the collector skips what existed before it, and is left as it was found."""

from __future__ import annotations

import gc
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest

from syncd import gctune
from syncd.engine import run_sync
from syncd.plugin import Connector, MappedRecord, Rejection
from tests.engine.helpers import CSV_MAPPING, install_connector, settings_for


class WatchingConnector(Connector):
    """Notes how many objects the collector skips each time it is handed records."""

    name: ClassVar[str] = "watching"
    seen: ClassVar[list[int]] = []

    def write(self, stream: str, records: Sequence[MappedRecord]) -> list[Rejection]:
        self.seen.append(gc.get_freeze_count())
        return []

    def flush(self) -> None:
        pass


@pytest.fixture
def watching(monkeypatch: pytest.MonkeyPatch) -> type[WatchingConnector]:
    install_connector(monkeypatch, "watching", WatchingConnector)
    WatchingConnector.seen = []
    return WatchingConnector


def test_a_sync_freezes_what_existed_before_it_and_unfreezes_after(
    make_sandbox: Any, tmp_path: Path, watching: type[WatchingConnector]
) -> None:
    sandbox = make_sandbox(customers=3, invoices=5, transactions=0)
    settings = settings_for(
        sandbox,
        f"sqlite:///{tmp_path / 's.db'}",
        tmp_path / "out",
        connectors={"watching": {"enabled": True, "mapping": str(CSV_MAPPING)}},
    )
    frozen = gc.get_freeze_count()

    report = run_sync(settings)

    assert report.ok, report.errors()
    assert watching.seen, "the connector was handed no records"
    # What existed before the run (modules, settings) is frozen: the collector skips it.
    assert all(count > frozen + 10_000 for count in watching.seen), watching.seen
    assert gc.get_freeze_count() == frozen


def test_the_freeze_holds_until_the_last_of_concurrent_runs_ends() -> None:
    first_in, second_out = threading.Event(), threading.Event()
    during: list[int] = []

    def first() -> None:
        with gctune.sync_collection():
            first_in.set()
            second_out.wait(10)
            during.append(gc.get_freeze_count())  # the other run ended: still frozen for this one

    thread = threading.Thread(target=first)
    thread.start()
    assert first_in.wait(10)
    with gctune.sync_collection():
        assert gc.get_freeze_count() > 0
    second_out.set()
    thread.join(10)
    assert during and during[0] > 0
    assert gc.get_freeze_count() == 0


def test_a_failed_run_unfreezes() -> None:
    with pytest.raises(RuntimeError), gctune.sync_collection():
        raise RuntimeError("boom")
    assert gc.get_freeze_count() == 0
