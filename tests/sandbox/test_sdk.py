"""The official Invoiced SDK (PyPI `invoiced`), unmodified apart from its base URL, works against the sandbox."""

from __future__ import annotations

from decimal import Decimal

import invoiced
import pytest
from invoiced.operations import CreatableObject, DeletableObject, ListableObject, UpdatableObject

from syncd.sandbox import Sandbox


class Transaction(CreatableObject, DeletableObject, ListableObject, UpdatableObject):  # type: ignore[misc]
    """The SDK derives `/transactions` from the class name; 3.x ships no Transaction class of its own."""


def sdk(sb: Sandbox) -> invoiced.Client:
    client = invoiced.Client(sb.api_key)
    client.api_url = sb.url  # the only change: the base URL (normally Client.ApiBase)
    return client


def test_customer_invoice_payment_and_balances(sandbox: Sandbox) -> None:
    client = sdk(sandbox)
    customer = client.Customer.create(name="Acme", metadata={"account_rep": "Jan"})
    assert customer.id and customer.object == "customer" and customer.metadata == {"account_rep": "Jan"}

    invoice = client.Invoice.create(
        customer=customer.id,
        currency="usd",
        payment_terms="NET 30",
        items=[
            {"name": "Copy Paper, Case", "quantity": 5, "unit_cost": 45},
            {"name": "Delivery", "unit_cost": 10},
        ],
        discounts=[{"amount": 5}],
        taxes=[{"amount": 3.85}],
    )
    assert Decimal(str(invoice.subtotal)) == Decimal("235")
    assert Decimal(str(invoice.total)) == Decimal("233.85")
    assert invoice.balance == invoice.total and invoice.paid is False and invoice.status == "not_sent"
    assert invoice.due_date == invoice.date + 30 * 86400

    payment = Transaction(client).create(
        invoice=invoice.id, type="payment", method="check", gateway_id="1450", amount=100
    )
    assert payment.customer == customer.id and payment.currency == "usd"
    partly = client.Invoice.retrieve(invoice.id)
    assert Decimal(str(partly.balance)) == Decimal("133.85") and partly.paid is False

    Transaction(client).create(
        invoice=invoice.id, type="payment", method="ach", amount=133.85, idempotency_key="pay-2"
    )
    paid = client.Invoice.retrieve(invoice.id)
    assert Decimal(str(paid.balance)) == 0 and paid.paid is True and paid.status == "paid"
    assert Decimal(str(paid.amount_paid)) == Decimal("233.85")


def test_list_pagination_and_filters(make_sandbox: object) -> None:
    sb: Sandbox = make_sandbox(customers=12, invoices=57, transactions=10)  # type: ignore[operator]
    client = sdk(sb)
    seen: list[int] = []
    invoices, meta = client.Invoice.list(per_page=10)
    assert meta.total_count == 57 and set(meta.links) >= {"self", "first", "next", "last"}
    page = 1
    while True:
        seen += [inv.id for inv in invoices]
        if "next" not in meta.links:
            break
        page += 1
        invoices, meta = client.Invoice.list(per_page=10, page=page)
    assert seen == sorted(inv["id"] for inv in sb.data.list("invoices"))

    region = next(c["metadata"]["region"] for c in sb.data.list("customers") if "region" in c["metadata"])
    customers, meta = client.Customer.list(metadata={"region": region})
    want = [c["id"] for c in sb.data.list("customers") if c["metadata"].get("region") == region]
    assert [c.id for c in customers] == want and meta.total_count == len(want)

    cid = sb.data.list("invoices")[0]["customer"]
    invoices, _ = client.Invoice.list(filter={"customer": cid}, sort="date desc")
    dates = [inv.date for inv in invoices]
    assert invoices and all(inv.customer == cid for inv in invoices) and dates == sorted(dates, reverse=True)


def test_update_delete_and_sdk_errors(sandbox: Sandbox) -> None:
    client = sdk(sandbox)
    customer = client.Customer.retrieve(sandbox.data.list("customers")[0]["id"])
    customer.name = "Renamed Ltd"
    assert customer.save() is True
    assert sandbox.data.get("customers", customer.id)["name"] == "Renamed Ltd"  # type: ignore[index]

    lonely = client.Customer.create(name="Short-lived")
    assert lonely.delete() is True
    assert sandbox.data.get("customers", lonely.id) is None

    with pytest.raises(invoiced.errors.InvalidRequestError) as bad:
        client.Invoice.create(customer=customer.id, items=[{"name": "x", "unit_cost": -5}])
    assert bad.value.error["param"] == "items[0][unit_cost]"
    wrong = invoiced.Client("sk_wrong")
    wrong.api_url = sandbox.url
    with pytest.raises(invoiced.errors.AuthenticationError):
        wrong.Customer.list()


def test_events_show_deletions(sandbox: Sandbox) -> None:
    client = sdk(sandbox)
    target = sandbox.data.list("transactions")[0]["id"]
    Transaction(client, target).delete()
    events, meta = client.Event.list(filter={"type": "transaction.deleted"})
    assert [e.data["object"]["id"] for e in events] == [target] and meta.total_count == 1
