"""The checkpoint store behaves the same on SQLite and PostgreSQL."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import text

from syncd.errors import StoreError
from syncd.plugin import Record
from syncd.store import Store, content_hash


def test_raw_records_round_trip_money_exactly(store_url: str) -> None:
    store = Store.open(store_url)
    data = {"id": 7, "total": Decimal("0.10") + Decimal("0.20"), "items": [{"amount": Decimal("1E+2")}]}
    record = Record("invoices", "7", 100, data)
    store.save_raw([(record, content_hash(data))])
    back = store.get_raw("invoices", "7")
    assert back == data
    assert isinstance(back["total"], Decimal) and str(back["total"]) == "0.30"
    assert store.raw_hashes("invoices", ["7", "8"]) == {"7": content_hash(data)}
    store.close()


def test_iter_raw_batches_in_id_order_and_skips_deleted(store_url: str) -> None:
    store = Store.open(store_url)
    rows = [(Record("customers", str(i), i, {"id": i}), str(i)) for i in (10, 9, 100, 2)]
    rows.append((Record("customers", "5", 5, {"id": 5}, deleted=True), "deleted"))
    store.save_raw(rows)
    batches = list(store.iter_raw("customers", include_deleted=False, batch=2))
    assert [[r.id for r in b] for b in batches] == [["2", "9"], ["10", "100"]]
    assert store.count_raw("customers") == 4
    store.close()


def test_cursors_partitions_and_finish(store_url: str) -> None:
    store = Store.open(store_url)
    store.set_cursor("invoices", "w::99", 50)
    store.set_cursor("invoices", "w:100:", 70)
    assert store.cursors("invoices") == {"w::99": 50, "w:100:": 70}
    store.finish_partitions("invoices", 50)
    assert store.cursors("invoices") == {"": 50}
    store.reset_stream("invoices")
    assert store.cursors("invoices") == {}
    store.close()


def test_resume_points_live_and_die_with_their_cursors(store_url: str) -> None:
    store = Store.open(store_url)
    store.set_cursor("invoices", "w::9", 100, (150, [120, 100]))
    store.set_cursor("invoices", "w:10:", 100, (130, [100]))
    store.set_cursor("transactions", "w:10:", 7, (9, [7]))
    assert store.resume_points("invoices") == {"w::9": (150, (100, 120)), "w:10:": (130, (100,))}
    store.set_cursor("invoices", "w::9", 120)  # a page without one: the old one is dropped
    assert store.resume_points("invoices") == {"w:10:": (130, (100,))}
    store.drop_cursors("invoices", ["w:10:"])
    assert store.resume_points("invoices") == {}
    store.set_cursor("invoices", "w::9", 100, (150, [100]))
    store.finish_partitions("invoices", 200)
    assert store.resume_points("invoices") == {}
    store.reset_stream("transactions")
    assert store.resume_points("transactions") == {}
    store.save_raw(
        [
            (Record("invoices", "1", 100, {"id": 1}), "h1"),
            (Record("invoices", "2", 101, {"id": 2}), "h2"),
            (Record("invoices", "3", 100, {"id": 3}, deleted=True), "h3"),
        ]
    )
    assert store.raw_updated_at("invoices", [100, 102]) == {"1": 100}
    store.close()


def test_deliveries_and_dead_letters(store_url: str) -> None:
    store = Store.open(store_url)
    store.commit_deliveries("csv", "invoices", [("1", "h1")], [("2", "bad amount")])
    store.commit_deliveries("csv", "invoices", [], [("2", "still bad")])
    assert store.delivered_hashes("csv", "invoices", ["1", "2"]) == {"1": "h1"}
    [dead] = store.dead_letters()
    assert (dead.record_id, dead.reason, dead.attempts) == ("2", "still bad", 2)
    store.commit_deliveries("csv", "invoices", [("2", "h2")])
    assert store.count_dead_letters() == 0
    store.forget_deliveries("csv")
    assert store.delivered_hashes("csv", "invoices", ["1", "2"]) == {}
    store.close()


def test_output_rows_replace_per_record_and_track_dirtiness(store_url: str) -> None:
    store = Store.open(store_url)
    out = store.outputs("csv")
    out.put_many([("invoices", "2", {"invoices": [{"n": 2}], "lines": [{"l": "a"}, {"l": "b"}]})])
    out.put("invoices", "10", {"invoices": [{"n": 10}]})
    assert out.is_dirty()
    out.mark_clean()
    assert not out.is_dirty()
    out.put("invoices", "2", {"invoices": [{"n": 22}]})
    assert [r["n"] for r in out.rows("invoices")] == [22, 10]
    assert list(out.rows("lines")) == []
    out.delete("invoices", "10")
    assert [r["n"] for r in out.rows("invoices")] == [22]
    assert list(store.outputs("ledger").rows("invoices")) == []
    store.close()


def test_runs_are_recorded(store_url: str) -> None:
    store = Store.open(store_url)
    run = store.start_run("sync")
    store.finish_run(run, "failed", {"fetched": 3}, "boom")
    [last] = store.recent_runs(1)
    assert (last.kind, last.status, last.error) == ("sync", "failed", "boom")
    store.close()


def test_a_store_from_a_newer_syncd_is_refused(store_url: str) -> None:
    store = Store.open(store_url)
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE syncd_alembic_version SET version_num = '9999'"))
    store.close()
    with pytest.raises(StoreError, match="schema revision 9999, unknown to this syncd"):
        Store.open(store_url)


def test_unreachable_store_is_a_store_error() -> None:
    with pytest.raises(StoreError, match="unusable"):
        Store.open("postgresql://nobody:secretpw@127.0.0.1:1/none")


def test_references_are_indexed_and_changed_referred_records_are_due(store_url: str) -> None:
    store = Store.open(store_url)
    invoices = [
        Record("invoices", "1", 10, {"id": 1, "customer": 7}),
        Record("invoices", "2", 10, {"id": 2, "customer": {"id": 8, "name": "expanded"}}),
        Record("invoices", "3", 10, {"id": 3, "customer": 7}),
    ]
    store.save_raw([(r, content_hash(r.data)) for r in invoices])
    store.save_raw([(Record("customers", "7", 10, {"id": 7}), "h7")])
    assert [r.id for r in store.raw_referring("invoices", "customer", ["7"])] == ["1", "3"]
    assert [r.id for r in store.raw_referring("invoices", "customer", ["8"])] == ["2"]
    assert store.dependents_due("customers") == ["7"]
    store.clear_dependents_due("customers", ["7"])
    assert store.dependents_due("customers") == []
    assert store.get_raw_many("invoices", ["1", "9"]) == {
        "1": (content_hash(invoices[0].data), {"id": 1, "customer": 7})
    }
    store.close()


def test_referred_records_read_again_reflect_a_change(store_url: str) -> None:
    store = Store.open(store_url)
    old = Record("customers", "7", 10, {"id": 7, "name": "Old", "credit": Decimal("1.50")})
    store.save_raw([(old, content_hash(old.data))])
    assert store.get_raw_many("customers", ["7"])["7"][1]["name"] == "Old"
    new = Record("customers", "7", 11, {"id": 7, "name": "New", "credit": Decimal("2.50")})
    store.save_raw([(new, content_hash(new.data))])
    assert store.get_raw_many("customers", ["7"]) == {"7": (content_hash(new.data), new.data)}
    store.save_raw([(Record("customers", "7", 12, {"id": 7}, deleted=True), "gone")])
    assert store.get_raw_many("customers", ["7"]) == {}
    store.close()


def test_raw_referring_hashed_gives_each_record_its_content_hash(store_url: str) -> None:
    store = Store.open(store_url)
    txns = [
        Record("transactions", "5", 10, {"id": 5, "invoice": 1, "amount": Decimal("9.99")}),
        Record("transactions", "4", 10, {"id": 4, "invoice": {"id": 1}, "amount": Decimal("0.01")}),
        Record("transactions", "6", 10, {"id": 6, "invoice": 2}),
    ]
    store.save_raw([(r, content_hash(r.data)) for r in txns])
    got = store.raw_referring_hashed("transactions", "invoice", ["1"])
    assert [(r.id, r.data, h) for r, h in got] == [
        (r.id, r.data, content_hash(r.data)) for r in (txns[1], txns[0])
    ]
    store.close()


@given(
    st.dictionaries(
        st.text(max_size=8),
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(),
            st.text(),
            st.decimals(allow_nan=False, allow_infinity=False),
        ),
        max_size=6,
    )
)
def test_output_rows_are_stored_as_dumps_would_write_them(row: dict[str, object]) -> None:
    """The fast path for plain rows writes exactly what `dumps` writes, Decimals included."""
    from syncd.store.store import _dumps_row, dumps

    assert _dumps_row(row) == dumps(row)


_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.decimals(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(st.text(max_size=8), _json_values, max_size=6))
def test_the_fast_record_encoder_writes_what_dumps_writes(record: dict[str, object]) -> None:
    """Same text, so the same content hash: stores written before keep their hashes."""
    from syncd.store.store import dumps, dumps_record, loads

    assert dumps_record(record) == dumps(record)
    assert loads(dumps_record(record)) == record


def test_referred_records_kept_decoded_are_not_decoded_again_until_they_change(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import syncd.store.store as store_module

    store = Store.open(store_url)
    old = Record("customers", "7", 1, {"id": 7, "name": "Old", "updated_at": 1})
    store.save_raw([(old, content_hash(old.data))])
    decoded: list[object] = []
    real = store_module.loads
    monkeypatch.setattr(store_module, "loads", lambda text: (decoded.append(text), real(text))[1])
    for _ in range(3):  # saved in this process: kept decoded, read as hashes only
        assert store.get_raw_many("customers", ["7"])["7"][1]["name"] == "Old"
    assert decoded == []
    other = Store.open(store_url)  # another process edits the customer
    new = Record("customers", "7", 2, {"id": 7, "name": "New", "updated_at": 2})
    other.save_raw([(new, content_hash(new.data))])
    other.close()
    assert store.get_raw_many("customers", ["7"]) == {"7": (content_hash(new.data), new.data)}
    assert len(decoded) == 1
    store.close()


def test_a_store_locked_while_another_process_closes_it_is_waited_for(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite answers "database is locked" at once, past any busy timeout, to a process that
    opens the file while the last one closing it checkpoints the WAL: opening waits it out."""
    import sqlite3

    from sqlalchemy.exc import OperationalError

    import syncd.store.database as database

    real = database.migrate
    calls: list[int] = []

    def migrate(engine: Any) -> list[str]:
        calls.append(1)
        if len(calls) <= 2:
            raise OperationalError("BEGIN IMMEDIATE", {}, sqlite3.OperationalError("database is locked"))
        return real(engine)

    monkeypatch.setattr(database, "migrate", migrate)
    Store.open(f"sqlite:///{tmp_path / 'a.db'}").close()
    assert len(calls) == 3

    def broken(engine: Any) -> list[str]:
        raise OperationalError("SELECT 1", {}, sqlite3.OperationalError("disk I/O error"))

    monkeypatch.setattr(database, "migrate", broken)
    with pytest.raises(StoreError, match="unusable: OperationalError: disk I/O error"):
        Store.open(f"sqlite:///{tmp_path / 'b.db'}")
