"""A SQLite store keeps the shared pace in a file beside it (syncd.store.database.pace_engine).

The pacer writes its row every fraction of a second during a sync; in the store's own file
each write emptied the page cache of the delivery's connection. These tests pin where the
row lives, that processes of one store still share one pace, and that a store connection
sees no write from the pacer at all (SQLite's `data_version` moves on another connection's
commit, which is when it drops its cache).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import sqlalchemy
from sqlalchemy import text
from structlog.testing import capture_logs

from syncd.engine import run_sync
from syncd.store import Store
from syncd.store.database import PAGE_CACHE_KIB, pace_engine
from syncd.store.pacing import SharedPacer
from tests.engine.helpers import settings_for


def _data_version(conn: object) -> int:
    return int(conn.exec_driver_sql("PRAGMA data_version").scalar_one())  # type: ignore[attr-defined]


def test_the_pacers_writes_never_touch_the_store_file(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'syncd.db'}")
    try:
        pacer = SharedPacer(store.pace_engine, "acme")
        with store.engine.connect() as conn:  # as the delivery's connection sees the store
            before = _data_version(conn)
            for _ in range(5):
                pacer.acquire()
                pacer.succeeded()
            pacer.throttled(pacer.acquire(), 0.0)
            assert pacer.shared_calls >= 2  # the row was written, more than once
            assert _data_version(conn) == before  # ... and not in this file: the cache stays
            assert conn.exec_driver_sql("SELECT count(*) FROM pace").scalar_one() == 0
        with store.page() as conn:  # a delivering connection keeps a bigger cache
            assert conn.exec_driver_sql("PRAGMA cache_size").scalar_one() == -PAGE_CACHE_KIB
        with store.engine.connect() as conn:  # ... for good
            assert conn.exec_driver_sql("PRAGMA cache_size").scalar_one() == -PAGE_CACHE_KIB
        assert (tmp_path / "syncd.db-pace").is_file()
        with store.pace_engine.connect() as conn:
            row = conn.execute(text("SELECT key, episodes FROM pace")).one()
        assert tuple(row) == ("acme", 1)
    finally:
        store.close()


def test_two_processes_of_one_store_share_one_pace(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'syncd.db'}"
    one, two = Store.open(url), Store.open(url)  # own engines, as two processes have
    try:
        a, b = SharedPacer(one.pace_engine, "acme"), SharedPacer(two.pace_engine, "acme")
        assert one.pace_engine is not two.pace_engine
        for _ in range(5):
            a.acquire()
            a.succeeded()
        a.throttled(a.acquire(), 0.5)  # a 429 with Retry-After: 0.5 seen by process one
        slept: list[float] = []
        b.sleep = lambda s: slept.append(s)
        b.acquire()  # process two never saw it, yet waits it out at the same pace
        assert sum(slept) >= 0.3
        assert (b.rate, b.episodes) == (a.rate, 1)
    finally:
        one.close()
        two.close()


def test_a_file_beside_sqlite_only(store_url: str) -> None:
    store = Store.open(store_url)
    try:
        if store_url.startswith("sqlite"):
            assert store.pace_engine is not store.engine
            assert Path(store.pace_engine.url.database or "").name.endswith(".db-pace")
        else:  # PostgreSQL: one server for every host; its writes drop nobody's cache
            assert store.pace_engine is store.engine
    finally:
        store.close()
    assert pace_engine(sqlalchemy.create_engine("sqlite://")) is None  # in memory: nowhere beside


def test_an_unusable_pace_file_leaves_the_pace_in_the_store_and_says_so(tmp_path: Path) -> None:
    (tmp_path / "syncd.db-pace").mkdir()  # a folder where the file would go: cannot be opened
    store = Store.open(f"sqlite:///{tmp_path / 'syncd.db'}")
    try:
        with capture_logs() as logs:
            engine = store.pace_engine
        assert engine is store.engine
        assert [e["event"] for e in logs] == ["pacing.file_unusable"]
        pacer = SharedPacer(engine, "acme")
        pacer.throttled(pacer.acquire(), 0.0)
        with store.engine.connect() as conn:  # the pace still shared, through the store
            assert conn.exec_driver_sql("SELECT count(*) FROM pace").scalar_one() == 1
    finally:
        store.close()


def test_a_sync_paces_through_the_file_beside_its_store(make_sandbox: Any, tmp_path: Path) -> None:
    sandbox = make_sandbox(customers=10, invoices=60, transactions=20)
    db = tmp_path / "syncd.db"
    settings = settings_for(sandbox, f"sqlite:///{db}", tmp_path / "out")
    report = run_sync(settings)
    assert report.ok, report.errors()
    pace = sqlite3.connect(tmp_path / "syncd.db-pace")
    store = sqlite3.connect(db)
    try:
        assert pace.execute("SELECT key FROM pace").fetchall() == [(settings.account,)]
        assert store.execute("SELECT count(*) FROM pace").fetchone() == (0,)
    finally:
        pace.close()
        store.close()
