"""mappings/ledger.toml through the real mapping engine, on sandbox-shaped data: tools accept, AR equals."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from connectors.ledger import LedgerConnector
from syncd.mapping import MappingSet, load_mapping
from syncd.plugin import MappedRecord, Record
from syncd.store import Store
from tests.ledger.helpers import (
    ROOT,
    ar_balances,
    bean_check,
    hledger_check,
    ledger_ar,
    ledger_check,
    make_connector,
)

MAPPING = ROOT / "mappings" / "ledger.toml"


def expected_ar(data: Any) -> dict[tuple[str, str], Decimal]:
    """Per customer and currency: the sum of open (issued, not voided) invoice balances."""
    customers = {c["id"]: c for c in data.list("customers")}
    owed: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for inv in data.list("invoices"):
        if inv["draft"] or inv["status"] == "voided":
            continue
        c = customers[inv["customer"]]
        owed[(f"Assets:Accounts Receivable:{c['name']} ({c['number']})", inv["currency"].upper())] += inv[
            "balance"
        ]
    return {k: v for k, v in owed.items() if v}


def map_all(
    mapping: MappingSet, data: Any, stream: str, ids: Iterable[Any] | None = None
) -> list[MappedRecord]:
    def resolve(s: str, rid: str) -> Mapping[str, Any] | None:
        return data.get(s, rid)  # type: ignore[no-any-return]

    objs = data.list(stream) if ids is None else [data.get(stream, i) for i in ids]
    return [
        MappedRecord(r, mapping.apply(r, resolve))
        for r in (Record(stream, str(o["id"]), o["updated_at"], o) for o in objs)
    ]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(f"sqlite:///{tmp_path / 'syncd.db'}")
    yield s
    s.close()


@pytest.fixture(scope="module")
def mapping() -> MappingSet:
    return load_mapping(MAPPING, LedgerConnector.tables)


def _deliver(conn: LedgerConnector, mapping: MappingSet, data: Any) -> None:
    for stream in ("customers", "invoices", "transactions"):
        assert conn.write(stream, map_all(mapping, data, stream)) == []
    conn.close()


def test_default_mapping_satisfies_the_connector(mapping: MappingSet) -> None:
    columns = mapping.columns()
    for table, spec in LedgerConnector.tables.items():
        assert spec.required <= set(columns[table]), table


@pytest.mark.parametrize("dialect", ["hledger", "ledger", "beancount"])
def test_seeded_book_through_default_mapping(
    tmp_path: Path, store: Store, mapping: MappingSet, dialect: str
) -> None:
    from syncd.sandbox.data import SandboxData

    data = SandboxData.seeded(11, 25, 200, 160)
    path = Path(f"books.{dialect}")
    _deliver(make_connector(tmp_path, store, dialect=dialect, path=path), mapping, data)
    if dialect == "beancount":
        bean_check(tmp_path / path)
        return
    if dialect == "ledger":
        ledger_check(tmp_path / path)
        assert ledger_ar(tmp_path / path) == expected_ar(data)
        return
    hledger_check(tmp_path / path)
    assert ar_balances(tmp_path / path) == expected_ar(data)


def test_edits_in_the_sandbox_keep_ar_equal(tmp_path: Path, store: Store, mapping: MappingSet) -> None:
    from syncd.sandbox.data import SandboxData

    data = SandboxData.seeded(5, 12, 80, 60)
    path = tmp_path / "invoiced.journal"
    _deliver(make_connector(tmp_path, store), mapping, data)
    assert ar_balances(path) == expected_ar(data)

    open_invoices = [
        i for i in data.list("invoices") if i["status"] in ("past_due", "sent", "viewed", "not_sent")
    ]
    paid = [i for i in data.list("invoices") if i["status"] == "paid"]
    a, b, c = open_invoices[:3]
    a_name = data.get("customers", a["customer"])["name"]
    new = [
        data.create(
            "transactions",
            {"type": "payment", "invoice": a["id"], "amount": a["balance"] / 2, "method": "wire"},
        ),
        data.create(
            "transactions",
            {
                "type": "refund",
                "invoice": paid[0]["id"],
                "amount": Decimal("1.00") * (100 if paid[0]["currency"] == "jpy" else 1),
                "method": "check",
            },
        ),
        data.create(
            "transactions",
            {
                "type": "adjustment",
                "invoice": b["id"],
                "amount": -b["balance"] / 4 if b["currency"] != "jpy" else -100,
                "method": "balance",
            },
        ),
        data.create(
            "transactions",
            {"type": "adjustment", "invoice": c["id"], "amount": Decimal(3), "method": "balance"},
        ),
    ]
    # Invoiced refuses to void an invoice with payments applied; void one without.
    voided = data.void_invoice(next(i for i in open_invoices[3:] if not i["amount_paid"])["id"])
    gone_tx = next(t for t in data.list("transactions") if t["invoice"] == paid[1]["id"])
    data.delete("transactions", gone_tx["id"])
    draft = next(i for i in data.list("invoices") if i["draft"])
    renamed = data.update("customers", a["customer"], {"name": "Renamed & Sons"})

    conn = make_connector(tmp_path, store)
    assert conn.write("customers", map_all(mapping, data, "customers", [renamed["id"]])) == []
    touched_inv = {a["id"], b["id"], c["id"], paid[0]["id"], paid[1]["id"], voided["id"], draft["id"]}
    assert conn.write("invoices", map_all(mapping, data, "invoices", sorted(touched_inv))) == []
    assert conn.write("transactions", map_all(mapping, data, "transactions", [t["id"] for t in new])) == []
    gone = Record("transactions", str(gone_tx["id"]), gone_tx["updated_at"], {}, deleted=True)
    assert conn.write("transactions", [MappedRecord(gone, {})]) == []
    conn.close()
    hledger_check(path)
    assert ar_balances(path) == expected_ar(data)
    # the rename moved every entry of that customer, including ones not delivered again
    text = path.read_text()
    assert f"Renamed & Sons ({renamed['number']})" in text
    assert f"Accounts Receivable:{a_name} ({renamed['number']})" not in text
    assert f"; invoiced_type: transaction\n    ; invoiced_id: {gone_tx['id']}\n" not in path.read_text()
