"""An account's PostgreSQL schema (`syncd_NAME`) is created on first use, also when two
processes race; a search_path written by hand that names a missing schema is still refused.

Runs in a database of its own (created and dropped here): account schemas have fixed names."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy
from rich.console import Console
from sqlalchemy import inspect, text

from syncd.accounts import account_store_url
from syncd.errors import StoreError
from syncd.store import Store
from syncd.store.command import upgrade_report
from syncd.store.migrate import VERSION_TABLE
from tests.conftest import PG_URL, _pg_available

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    """The URL of a fresh database, dropped afterwards."""
    if not _pg_available():
        pytest.skip("PostgreSQL not reachable")
    name = f"syncd_{uuid.uuid4().hex[:10]}"
    admin = sqlalchemy.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield PG_URL.rsplit("/", 1)[0] + f"/{name}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


def schemas(url: str) -> set[str]:
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as conn:
            return set(conn.execute(text("SELECT nspname FROM pg_namespace")).scalars())
    finally:
        engine.dispose()


def test_an_accounts_schema_is_created_on_first_use_and_keeps_its_store_apart(database: str) -> None:
    acme, beta = account_store_url(database, "acme"), account_store_url(database, "beta")
    assert "syncd_acme" not in schemas(database)
    for url, value in ((acme, 111), (beta, 222)):
        store = Store.open(url)
        store.set_cursor("invoices", "", value)
        store.close()
    for url, value in ((acme, 111), (beta, 222)):
        store = Store.open(url)  # the second time: found, not created again
        try:
            assert store.cursors("invoices") == {"": value}
        finally:
            store.close()
    engine = sqlalchemy.create_engine(database)
    with engine.connect() as conn:
        for schema in ("syncd_acme", "syncd_beta"):
            assert {"cursor", "meta", VERSION_TABLE} <= set(inspect(conn).get_table_names(schema=schema))
        assert inspect(conn).get_table_names(schema="public") == []  # nothing landed beside them
    engine.dispose()


def test_a_hand_written_search_path_naming_a_missing_schema_is_still_refused(database: str) -> None:
    missing = f"syncd_hand_{uuid.uuid4().hex[:6]}"
    with pytest.raises(StoreError) as raised:
        Store.open(f"{database}?options=-csearch_path%3D{missing}")
    assert f'schema "{missing}"' in str(raised.value) and "does not exist" in str(raised.value)
    assert missing not in schemas(database)


def test_a_schema_created_by_someone_else_meanwhile_is_no_error(database: str) -> None:
    """Another process's CREATE SCHEMA, not yet committed when ours runs: PostgreSQL's IF NOT
    EXISTS then waits for it and fails on pg_namespace's unique index, which must not stop us."""
    url = account_store_url(database, "gamma")
    other = sqlalchemy.create_engine(database)
    opened: list[Store] = []
    failed: list[BaseException] = []

    def open_store() -> None:
        try:
            opened.append(Store.open(url))
        except BaseException as exc:
            failed.append(exc)

    with other.connect() as conn:
        conn.execute(text('CREATE SCHEMA "syncd_gamma"'))  # uncommitted
        pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
        thread = threading.Thread(target=open_store)
        thread.start()
        # until our CREATE SCHEMA waits on the other transaction's lock
        waiting = text(
            "SELECT count(*) FROM pg_locks WHERE NOT granted AND :pid = ANY(pg_blocking_pids(pid))"
        )
        with sqlalchemy.create_engine(database).connect() as watch:
            while not watch.execute(waiting, {"pid": pid}).scalar():
                assert thread.is_alive() and not failed, failed
                watch.rollback()
        conn.commit()
    thread.join()
    other.dispose()
    assert not failed, failed
    try:
        opened[0].set_cursor("invoices", "", 5)
        assert opened[0].cursors("invoices") == {"": 5}
    finally:
        opened[0].close()


def test_six_stores_opened_at_once_all_open_and_the_schema_is_made_once(database: str) -> None:
    url = account_store_url(database, "delta")
    barrier = threading.Barrier(6)
    failed: list[BaseException] = []

    def open_store() -> None:
        barrier.wait()
        try:
            Store.open(url).close()
        except BaseException as exc:
            failed.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failed, failed
    assert "syncd_delta" in schemas(database)


def test_a_dry_run_upgrade_creates_nothing_and_shows_the_schema_it_would_create(
    database: str, tmp_path: Path
) -> None:
    url = account_store_url(database, "epsilon")
    out = tmp_path / "out.txt"
    with out.open("w") as file:
        upgrade_report(url, Console(file=file, width=200), dry_run=True)
    shown = out.read_text()
    assert "empty (new store)" in shown
    assert 'CREATE SCHEMA IF NOT EXISTS "syncd_epsilon";' in shown
    assert "syncd_epsilon" not in schemas(database)
