"""Raw records stored packed; a page's writes in one transaction; one query for a page's state."""

from __future__ import annotations

from decimal import Decimal

import pytest
from alembic import command
from sqlalchemy import create_engine, text

from syncd.plugin import Record
from syncd.store import Store, content_hash
from syncd.store.database import _normalise
from syncd.store.migrate import alembic_config
from syncd.store.store import dumps, loads, pack, unpack


class Boom(Exception):
    pass


def test_pack_round_trips_and_loads_reads_packed_plain_and_text() -> None:
    data = {"id": 7, "total": Decimal("0.30"), "name": "Zoë \u2028", "items": [{"amount": Decimal("1E+2")}]}
    text_ = dumps(data)
    packed = pack(text_)
    assert packed[:1] == b"\xf5" and unpack(packed) == text_.encode()
    assert unpack(text_.encode()) == text_.encode()  # untagged: the text itself
    for stored in (packed, memoryview(packed), text_.encode(), text_):
        assert loads(stored) == data
    invoice = '{"amount_paid":0.00,"customer":9,"items":[],"object":"invoice","status":"draft","total":3036.20}'
    assert len(pack(invoice)) < len(invoice) / 2  # the preset dictionary knows the keys


def test_raw_data_is_stored_packed(store_url: str) -> None:
    store = Store.open(store_url)
    try:
        data = {"id": 7, "object": "invoice", "total": Decimal("12.50")}
        store.save_raw([(Record("invoices", "7", 100, data), content_hash(data))])
        with store.engine.connect() as conn:
            stored = conn.execute(text("SELECT data FROM rawrecord WHERE record_id = '7'")).scalar_one()
        assert bytes(stored)[:1] == b"\xf5"
        assert store.get_raw("invoices", "7") == data
        assert store.get_raw_many("invoices", ["7"]) == {"7": (content_hash(data), data)}
        assert [r.data for b in store.iter_raw("invoices") for r in b] == [data]
    finally:
        store.close()


def test_stored_state_is_raw_hashes_and_referred_by_stored(store_url: str) -> None:
    store = Store.open(store_url)
    try:
        customers = [Record("customers", str(i), i, {"id": i}) for i in (1, 2, 3)]
        store.save_raw([(r, content_hash(r.data)) for r in customers])
        invoices = [
            Record("invoices", "10", 1, {"id": 10, "customer": 1}),
            Record("invoices", "11", 1, {"id": 11, "customer": {"id": 9}}),
            Record("invoices", "12", 1, {"id": 12, "customer": 2}, deleted=True),
        ]
        store.save_raw([(r, content_hash(r.data)) for r in invoices])
        ids = ["1", "2", "3", "9"]
        hashes, referred = store.stored_state("customers", ids)
        assert hashes == store.raw_hashes("customers", ids) == {r.id: content_hash(r.data) for r in customers}
        assert referred == store.referred_by_stored("customers", ids) == {"1", "9"}
        assert store.stored_state("invoices", ["10", "13"]) == ({"10": content_hash(invoices[0].data)}, set())
        assert store.stored_state("transactions", ["5"]) == ({}, set())
    finally:
        store.close()


def test_a_page_commits_its_writes_together_or_none_of_them(store_url: str) -> None:
    store = Store.open(store_url)
    outputs = store.outputs("csv")
    record = Record("invoices", "7", 100, {"id": 7})
    try:

        def fails_at_the_end() -> None:
            with store.page():
                store.save_raw([(record, content_hash(record.data))])
                outputs.put_many([("invoices", "7", {"invoices": [{"id": "7"}]})])
                store.commit_deliveries("csv", "invoices", [("7", "h")])
                store.set_cursor("invoices", "", 100)
                assert store.get_raw("invoices", "7") == {"id": 7}  # its reads see its writes
                raise Boom

        with pytest.raises(Boom):
            fails_at_the_end()
        assert store.get_raw("invoices", "7") is None
        assert list(outputs.rows("invoices")) == []
        assert store.delivered_hashes("csv", "invoices", ["7"]) == {}
        assert store.cursors("invoices") == {}
        with store.page() as conn, store.page() as inner:
            assert inner is conn  # a nested page joins the outer one
            store.save_raw([(record, content_hash(record.data))])
            outputs.put_many([("invoices", "7", {"invoices": [{"id": "7"}]})])
            store.set_cursor("invoices", "", 100)
        assert store.get_raw("invoices", "7") == {"id": 7}
        assert list(outputs.rows("invoices")) == [{"id": "7"}]
        assert store.cursors("invoices") == {"": 100}
    finally:
        store.close()


def test_a_store_of_revision_0004_gets_its_raw_records_packed(store_url: str) -> None:
    url = _normalise(store_url)
    command.upgrade(alembic_config(url), "0004")
    engine = create_engine(url)
    with engine.begin() as conn:
        for i in range(2500):  # more than one batch of the migration
            conn.execute(
                text(
                    "INSERT INTO rawrecord (stream, record_id, sort_key, updated_at, content_hash, "
                    "dependents_due, deleted, data) VALUES ('invoices', :id, :n, 100, 'h', false, false, :d)"
                ),
                {"id": str(i), "n": i, "d": f'{{"id":{i},"total":1.50}}'},
            )
    engine.dispose()
    store = Store.open(store_url)
    try:
        assert store.get_raw("invoices", "2499") == {"id": 2499, "total": Decimal("1.50")}
        assert store.count_raw("invoices") == 2500
        with store.engine.connect() as conn:
            firsts = {bytes(d)[:1] for (d,) in conn.execute(text("SELECT data FROM rawrecord"))}
        assert firsts == {b"\xf5"}
    finally:
        store.close()
    command.downgrade(alembic_config(url), "0004")  # and back: the text again
    engine = create_engine(url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT data FROM rawrecord WHERE record_id = '5'")).scalar_one() == '{"id":5,"total":1.50}'
    engine.dispose()
