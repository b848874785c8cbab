"""Hot statements run on the driver's cursor: inside the page's transaction, errors as
SQLAlchemy's, SQLite's busy timeout kept; `ref_id`'s fast path reads as before."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from syncd.failure import FAILURES, describe
from syncd.plugin import Record
from syncd.store import Store, content_hash
from syncd.store.store import ref_id


class Boom(Exception):
    pass


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    s = Store.open(store_url)
    yield s
    s.close()


def _bad(record_id: str) -> Record:
    return Record("invoices", record_id, None, {"id": record_id})  # type: ignore[arg-type]  # NOT NULL updated_at


def test_a_driver_error_is_sqlalchemys_and_rolls_the_page_back(store: Store) -> None:
    good = Record("invoices", "1", 100, {"id": 1})

    def fails_at_the_end() -> None:
        with store.page():
            store.save_raw([(good, content_hash(good.data))])
            store.outputs("csv").put_many([("invoices", "1", {"invoices": [{"id": "1"}]})])
            store.commit_deliveries("csv", "invoices", [("1", "h")])
            store.save_raw([(_bad("2"), "h")])

    with pytest.raises(IntegrityError) as caught:
        fails_at_the_end()
    assert isinstance(caught.value, FAILURES)  # the engine records it as the stream's error
    assert describe(caught.value).startswith("checkpoint store: ")
    assert store.get_raw("invoices", "1") is None
    assert store.delivered_hashes("csv", "invoices", ["1"]) == {}
    assert list(store.outputs("csv").rows("invoices")) == []
    # The connection goes back to the pool usable (PostgreSQL: no aborted transaction left).
    store.save_raw([(good, content_hash(good.data))])
    assert store.get_raw("invoices", "1") == {"id": 1}
    with pytest.raises(IntegrityError):
        store.save_raw([(_bad("3"), "h")])  # in a transaction of its own too
    assert store.raw_hashes("invoices", ["1", "3"]) == {"1": content_hash(good.data)}


def _holding_the_write_lock(path: str, taken: threading.Event, release: threading.Event) -> None:
    """Hold SQLite's write lock from `taken` until `release` (set by a timer or the test)."""
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    taken.set()
    release.wait(60)
    other.execute("COMMIT")
    other.close()


def test_sqlite_statements_wait_for_the_write_lock_and_fail_as_sqlalchemys(tmp_path: Any) -> None:
    path = str(tmp_path / "s.db")
    store = Store.open(f"sqlite:///{path}")
    record = Record("invoices", "1", 100, {"id": 1})
    try:
        taken, release = threading.Event(), threading.Event()
        holder = threading.Thread(target=_holding_the_write_lock, args=(path, taken, release))
        holder.start()
        taken.wait()
        timer = threading.Timer(0.5, release.set)  # lets go while the page waits for it
        timer.start()
        with store.page():  # waits (busy_timeout of the connection), does not fail
            store.save_raw([(record, content_hash(record.data))])
        assert release.is_set()  # it could only write once the lock was let go
        holder.join()
        assert store.get_raw("invoices", "1") == {"id": 1}

        taken.clear()
        release.clear()
        holder = threading.Thread(target=_holding_the_write_lock, args=(path, taken, release))
        holder.start()
        taken.wait()

        def impatient() -> None:
            with store.page() as conn:
                store._run(conn, "PRAGMA busy_timeout=50")  # the PRAGMA the cursor honours: its connection's
                store.commit_deliveries("csv", "invoices", [("1", "h")])

        with pytest.raises(OperationalError, match="locked"):
            impatient()
        release.set()
        holder.join()
        with store.page() as conn:
            store._run(conn, "PRAGMA busy_timeout=30000")
        assert store.delivered_hashes("csv", "invoices", ["1"]) == {}
    finally:
        store.close()


def test_a_page_that_fails_leaves_no_raw_record_behind(store: Store) -> None:
    customer = Record("customers", "1", 100, {"id": 1})

    def fails() -> None:
        with store.page():
            store.save_raw([(customer, content_hash(customer.data))])
            assert store.get_raw_many("customers", ["1"]) == {
                "1": (content_hash(customer.data), customer.data)
            }
            raise Boom

    with pytest.raises(Boom):
        fails()
    with store.page():
        assert store.get_raw_many("customers", ["1"]) == {}


def _old_ref_id(data: Mapping[str, Any], field: str) -> str | None:
    """ref_id before its fast path (frozen copy)."""
    value = data.get(field)
    if isinstance(value, Mapping):
        value = value.get("id")
    if value is None or isinstance(value, bool):
        return None
    return str(value)


class _Id(int):
    pass


@pytest.mark.parametrize(
    "value",
    [
        7,
        "7",
        "cus_abc",
        0,
        -1,
        True,
        False,
        None,
        1.5,
        Decimal("3"),
        _Id(4),
        {"id": 9},
        {"id": "x"},
        {"id": True},
        {"id": None},
        {},
        {"name": "n"},
        [],
        "",
    ],
)
def test_ref_id_reads_as_before(value: Any) -> None:
    for data in ({"customer": value}, {}):
        assert ref_id(data, "customer") == _old_ref_id(data, "customer")
        assert type(ref_id(data, "customer")) is type(_old_ref_id(data, "customer"))
