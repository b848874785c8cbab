"""Edge cases of the books, each rendered in the three dialects from sandbox data through the
default mapping, checked by hledger (`check --strict`), ledger-cli (`--pedantic`, `--strict`)
and bean-check, with the receivable of each customer equal to what the sandbox says is owed.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from connectors.ledger import LedgerConnector
from connectors.ledger.render import beancount_accounts
from syncd.mapping import MappingSet, load_mapping
from syncd.sandbox.data import SandboxData
from syncd.store import Store
from tests.ledger.helpers import (
    ROOT,
    ar_balances,
    bean_check,
    beancount_ar,
    hledger_check,
    ledger_ar,
    ledger_check,
    make_connector,
)
from tests.ledger.test_default_mapping import expected_ar, map_all

D = Decimal
DAY = 86400
T0 = 1717200000  # 2024-06-01


@pytest.fixture(scope="module")
def mapping() -> MappingSet:
    return load_mapping(ROOT / "mappings" / "ledger.toml", LedgerConnector.tables)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(f"sqlite:///{tmp_path / 'syncd.db'}")
    yield s
    s.close()


class Clock:
    """The sandbox's clock, moved by hand: dates are stable and voids come after invoices."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


def _data() -> tuple[SandboxData, Clock]:
    clock = Clock()
    return SandboxData(clock), clock


def _books(tmp_path: Path, store: Store, mapping: MappingSet, data: SandboxData) -> dict[str, str]:
    """Render the three dialects, check each with its tool and compare AR with the sandbox."""
    expected = expected_ar(data)
    texts: dict[str, str] = {}
    for dialect in ("hledger", "ledger", "beancount"):
        path = tmp_path / f"books.{dialect}"
        conn = make_connector(tmp_path, store, dialect=dialect, path=path)
        for stream in ("customers", "invoices", "transactions"):
            assert conn.write(stream, map_all(mapping, data, stream)) == []
        conn.close()
        texts[dialect] = path.read_text()
        if dialect == "hledger":
            hledger_check(path)
            assert ar_balances(path) == expected
        elif dialect == "ledger":
            ledger_check(path)
            assert ledger_ar(path) == expected
        else:
            bean_check(path)
            names = beancount_accounts({account for account, _ in expected})
            assert beancount_ar(path) == {(names[a], cur): v for (a, cur), v in expected.items()}
    return texts


def _customer(data: SandboxData, name: str, **fields: Any) -> dict[str, Any]:
    return data.create("customers", {"name": name, **fields})


def _invoice(
    data: SandboxData, customer: dict[str, Any], currency: str, *items: dict[str, Any], **kw: Any
) -> Any:
    return data.create(
        "invoices", {"customer": customer["id"], "currency": currency, "items": list(items), **kw}
    )


def _item(unit_cost: str, quantity: str = "1", **kw: Any) -> dict[str, Any]:
    return {"name": "Work", "type": "service", "quantity": D(quantity), "unit_cost": D(unit_cost), **kw}


def test_voided_invoices_leave_nothing_owed(tmp_path: Path, store: Store, mapping: MappingSet) -> None:
    data, clock = _data()
    a, b = _customer(data, "Voided Only"), _customer(data, "Mixed")
    only = _invoice(data, a, "usd", _item("120.00"))
    kept = _invoice(data, b, "usd", _item("80.00"), taxes=[{"amount": D("8.00")}])
    dropped = _invoice(data, b, "usd", _item("45.00", discounts=[{"amount": D("5.00")}]))
    clock.now += 3 * DAY
    data.void_invoice(only["id"])
    data.void_invoice(dropped["id"])
    data.create(
        "transactions", {"type": "payment", "invoice": kept["id"], "amount": D("30.00"), "method": "check"}
    )

    texts = _books(tmp_path, store, mapping, data)
    assert expected_ar(data) == {(f"Assets:Accounts Receivable:Mixed ({b['number']})", "USD"): D("58.00")}
    # Each void is the invoice entry plus its reversal on the void date, in every dialect.
    assert texts["hledger"].count("; invoiced_event: voided") == 2
    assert texts["ledger"].count("    ; Void Invoice ") == 2
    assert texts["beancount"].count('invoiced_event: "voided"') == 2
    assert "2024-06-04 * Voided Only | Void: Invoice" in texts["hledger"]


def test_applied_credit_notes_and_credit_balances(tmp_path: Path, store: Store, mapping: MappingSet) -> None:
    # The sandbox has no credit-note objects (nor does the connector read them): a credit note
    # reaches the books as the adjustment transaction that applies it, carrying `credit_note`.
    data, _ = _data()
    c = _customer(data, "Credited")
    inv = _invoice(data, c, "eur", _item("200.00"), _item("50.00", quantity="3"))
    data.create(
        "transactions",
        {"type": "adjustment", "invoice": inv["id"], "amount": D("-75.00"), "credit_note": 9001},
    )
    # Credit not applied to an invoice is the customer's credit balance, not a receivable.
    data.create(
        "transactions", {"type": "adjustment", "customer": c["id"], "currency": "eur", "amount": D("-20.00")}
    )

    texts = _books(tmp_path, store, mapping, data)
    assert expected_ar(data) == {(f"Assets:Accounts Receivable:Credited ({c['number']})", "EUR"): D("275.00")}
    assert f"    Liabilities:Customer Credit:Credited ({c['number']})  -20.00 EUR\n" in texts["hledger"]


def test_line_level_taxes_and_discounts(tmp_path: Path, store: Store, mapping: MappingSet) -> None:
    data, _ = _data()
    c = _customer(data, "Lines & Co")
    inv = _invoice(
        data,
        c,
        "usd",
        _item("19.99", quantity="3", taxes=[{"amount": D("4.80")}], discounts=[{"amount": D("2.00")}]),
        _item("100.00", type="product", taxes=[{"amount": D("8.25")}, {"amount": D("1.10")}]),
        _item("10.00", discounts=[{"amount": D("0.50")}]),
        taxes=[{"amount": D("3.00")}],
        discounts=[{"amount": D("1.00")}],
    )
    assert inv["total"] == D("59.97") + D("100.00") + D("10.00") + D("4.80") + D("9.35") + D("3.00") - D(
        "3.50"
    )
    data.create(
        "transactions", {"type": "payment", "invoice": inv["id"], "amount": D("50.00"), "method": "check"}
    )

    texts = _books(tmp_path, store, mapping, data)
    ledger = texts["hledger"]
    assert ledger.count("Liabilities:Sales Tax  -") == 4 and ledger.count("Income:Discounts  ") == 3
    assert "Expenses:Rounding" not in ledger  # the parts add up to the total: nothing to round


def test_three_decimal_currencies_stay_exact(tmp_path: Path, store: Store, mapping: MappingSet) -> None:
    data, _ = _data()
    k, b = _customer(data, "Kuwait Trading"), _customer(data, "Manama Services")
    kwd = _invoice(data, k, "kwd", _item("12.345", quantity="3"), taxes=[{"amount": D("0.617")}])
    _invoice(data, k, "kwd", _item("0.001"))
    bhd = _invoice(data, b, "bhd", _item("99.999"), discounts=[{"amount": D("0.333")}])
    data.create(
        "transactions", {"type": "payment", "invoice": kwd["id"], "amount": D("10.005"), "method": "wire"}
    )
    data.create(
        "transactions", {"type": "payment", "invoice": bhd["id"], "amount": D("0.001"), "method": "check"}
    )
    assert kwd["total"] == D("37.652") and bhd["total"] == D("99.666")

    texts = _books(tmp_path, store, mapping, data)
    assert expected_ar(data) == {
        (f"Assets:Accounts Receivable:Kuwait Trading ({k['number']})", "KWD"): D("27.648"),
        (f"Assets:Accounts Receivable:Manama Services ({b['number']})", "BHD"): D("99.665"),
    }
    assert "commodity 1000.000 KWD" in texts["hledger"] and "commodity 1000.000 BHD" in texts["hledger"]
    for text in texts.values():
        assert "37.652 KWD" in text and "-10.005 KWD" in text and "0.001 KWD" in text
        assert "99.666 BHD" in text and "-0.333 BHD" not in text and "0.333 BHD" in text


def test_beancount_names_that_collide_stay_apart(tmp_path: Path, store: Store, mapping: MappingSet) -> None:
    data, _ = _data()
    # "Acme & Co (X1)" and "Acme (Co-X1)" both sanitise to Acme-Co-X1; "Zoë" and "Zoe" alike.
    a = _customer(data, "Acme & Co", number="X1")
    b = _customer(data, "Acme", number="Co-X1")
    z1 = _customer(data, "Zoë", number="Z 1")
    z2 = _customer(data, "Zoe", number="Z-1")
    for n, c in enumerate((a, b, z1, z2), start=1):
        _invoice(data, c, "usd", _item(f"{n}00.00"))

    texts = _books(tmp_path, store, mapping, data)
    accounts = {
        line.split()[-1] for line in texts["beancount"].splitlines() if " open Assets:Accounts-Rec" in line
    }
    assert accounts == {
        "Assets:Accounts-Receivable:Acme-Co-X1",
        "Assets:Accounts-Receivable:Acme-Co-X1-2",
        "Assets:Accounts-Receivable:Zoe-Z-1",
        "Assets:Accounts-Receivable:Zoe-Z-1-2",
    }
    assert len(expected_ar(data)) == 4  # four customers, four balances, in each tool
