"""Writes follow the API's rules: bodies as JSON or forms, invoice arithmetic, payments, errors, idempotency."""

from __future__ import annotations

import base64
from decimal import Decimal
from typing import Any

import httpx
import pytest

from syncd.sandbox import Sandbox
from tests.sandbox.helpers import assert_error, body, client


def customer_id(sb: Sandbox) -> int:
    return int(sb.data.create("customers", {"name": "Writer Co", "currency": "usd"})["id"])


def test_form_encoded_body_with_nested_keys(sandbox: Sandbox) -> None:
    cid = customer_id(sandbox)
    form = (
        f"customer={cid}&currency=eur&items[0][name]=Paper&items[0][quantity]=3&items[0][unit_cost]=12.50"
        "&items[1][name]=Delivery&items[1][unit_cost]=10&items[1][taxable]=false"
        "&metadata[account_rep]=Jan&metadata[region]=emea&taxes[0][amount]=2.25&draft=false&notes="
    )
    with client(sandbox) as c:
        r = c.post("/invoices", content=form, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 201, r.text
    inv = body(r)
    assert inv["currency"] == "eur" and inv["metadata"] == {"account_rep": "Jan", "region": "emea"}
    assert [i["amount"] for i in inv["items"]] == [Decimal("37.50"), Decimal("10.00")]
    assert inv["items"][1]["taxable"] is False and inv["notes"] is None
    assert (
        inv["subtotal"] == Decimal("47.50")
        and inv["total"] == Decimal("49.75")
        and inv["balance"] == inv["total"]
    )
    assert inv == sandbox.data.get("invoices", inv["id"])


def test_invoice_arithmetic_and_status_through_payments_and_refunds(sandbox: Sandbox) -> None:
    cid = customer_id(sandbox)
    with client(sandbox) as c:
        inv = body(
            c.post(
                "/invoices",
                json={
                    "customer": cid,
                    "items": [
                        {"name": "Hours", "quantity": 2.5, "unit_cost": 100, "discounts": [{"amount": 10}]}
                    ],
                    "discounts": [{"amount": 15}],
                    "taxes": [{"amount": 18.04}],
                    "due_date": 4_102_444_800,
                },
            )
        )
        assert inv["subtotal"] == Decimal("250.00") and inv["total"] == Decimal("243.04")
        assert inv["status"] == "not_sent" and inv["paid"] is False and inv["amount_paid"] == 0

        first = c.post(
            "/transactions",
            json={
                "invoice": inv["id"],
                "type": "payment",
                "amount": 200,
                "method": "check",
                "gateway_id": "1450",
            },
        )
        assert first.status_code == 201 and body(first)["customer"] == cid
        now = body(c.get(f"/invoices/{inv['id']}"))
        assert (
            now["balance"] == Decimal("43.04")
            and now["paid"] is False
            and now["amount_paid"] == Decimal("200.00")
        )
        assert now["updated_at"] >= inv["updated_at"]

        pay_id = body(
            c.post("/transactions", json={"invoice": inv["id"], "type": "payment", "amount": "43.04"})
        )
        assert (
            pay_id["type"] == "invalid_request" and pay_id["param"] == "amount"
        )  # a string is the wrong type (JSON)
        c.post(
            "/transactions", json={"invoice": inv["id"], "type": "payment", "amount": json_number("43.04")}
        )
        done = body(c.get(f"/invoices/{inv['id']}"))
        assert done["balance"] == 0 and done["paid"] is True and done["status"] == "paid"

        refund = body(
            c.post(
                "/transactions",
                json={
                    "invoice": inv["id"],
                    "type": "refund",
                    "amount": 20,
                    "parent_transaction": body(first)["id"],
                },
            )
        )
        after = body(c.get(f"/invoices/{inv['id']}"))
        assert after["balance"] == Decimal("20.00") and after["paid"] is False
        assert c.delete(f"/transactions/{refund['id']}").status_code == 204
        assert body(c.get(f"/invoices/{inv['id']}"))["paid"] is True

        draft = body(c.post("/invoices", json={"customer": cid, "draft": True, "items": [{"unit_cost": 5}]}))
        assert draft["status"] == "draft"
        assert_error(
            c.post("/transactions", json={"invoice": draft["id"], "type": "payment", "amount": 5}),
            400,
            "invoice",
        )
        voided = body(c.post(f"/invoices/{inv['id']}/void"))
        assert voided["status"] == "voided"
        assert_error(
            c.post("/transactions", json={"invoice": inv["id"], "type": "payment", "amount": 1}),
            400,
            "invoice",
        )


def json_number(text: str) -> Any:
    """A JSON number with exactly these digits (httpx's json= cannot send a Decimal)."""
    return float(text)


def test_jpy_has_no_minor_unit_and_currency_must_match_the_invoice(sandbox: Sandbox) -> None:
    cust = sandbox.data.create("customers", {"name": "Tokyo KK", "currency": "jpy"})
    with client(sandbox) as c:
        inv = body(
            c.post(
                "/invoices", json={"customer": cust["id"], "items": [{"quantity": 3, "unit_cost": 1234.4}]}
            )
        )
        assert (
            inv["currency"] == "jpy"
            and inv["total"] == 3702
            and "." not in c.get(f"/invoices/{inv['id']}").text.split('"total":')[1].split(",")[0]
        )
        assert_error(
            c.post(
                "/transactions",
                json={"invoice": inv["id"], "type": "payment", "amount": 100, "currency": "usd"},
            ),
            400,
            "currency",
        )
    jpy = [i for i in sandbox.data.list("invoices") if i["currency"] == "jpy"]
    assert all(i["total"] == i["total"].to_integral_value() for i in jpy)


@pytest.mark.parametrize(
    ("path", "payload", "param"),
    [
        ("/customers", {"name": "X", "colour": "red"}, "colour"),
        ("/customers", {"name": 42}, "name"),
        ("/customers", {"email": "a@b"}, "name"),  # required
        ("/customers", {"name": "X", "autopay": "yes"}, "autopay"),
        ("/customers", {"name": "X", "metadata": ["a"]}, "metadata"),
        ("/customers", {"name": "X", "metadata": {f"k{i}": "v" for i in range(11)}}, "metadata"),
        ("/customers", {"name": "X", "metadata": {"k" * 41: "v"}}, "metadata"),
        ("/customers", {"name": "X", "metadata": {"rep": "v" * 256}}, "metadata[rep]"),
        ("/customers", {"name": "X", "metadata": {"rep": {"nested": 1}}}, "metadata[rep]"),
        ("/invoices", {"customer": "CUST-1"}, "customer"),
        ("/invoices", {"customer": 999999}, "customer"),
        ("/invoices", {"customer": 1, "items": [{"unit_cost": -1}]}, "items[0][unit_cost]"),
        ("/invoices", {"customer": 1, "items": [{"quantity": "two"}]}, "items[0][quantity]"),
        ("/invoices", {"customer": 1, "items": [{"name": "a", "sku": "b"}]}, "items[0][sku]"),
        ("/invoices", {"customer": 1, "items": {"name": "a"}}, "items"),
        ("/invoices", {"customer": 1, "discounts": [{"amount": -3}]}, "discounts[0][amount]"),
        ("/invoices", {"customer": 1, "taxes": [{}]}, "taxes[0][amount]"),
        (
            "/invoices",
            {"customer": 1, "items": [{"unit_cost": 5}], "discounts": [{"amount": 50}]},
            "discounts",
        ),
        ("/invoices", {"customer": 1, "date": "2024-01-01"}, "date"),
        ("/invoices", {"customer": 1, "draft": 1}, "draft"),
        ("/invoices", {"customer": 1, "currency": "dollars"}, "currency"),
        ("/transactions", {"invoice": 1, "amount": 10}, "type"),
        ("/transactions", {"invoice": 1, "type": "payment", "amount": -10}, "amount"),
        ("/transactions", {"invoice": 1, "type": "payment", "amount": "ten"}, "amount"),
        ("/transactions", {"invoice": 1, "type": "payment", "amount": True}, "amount"),
        ("/transactions", {"invoice": 1, "type": "gift", "amount": 1}, "type"),
        ("/transactions", {"invoice": 1, "type": "payment", "amount": 1, "method": "barter"}, "method"),
        ("/transactions", {"type": "payment", "amount": 1}, "customer"),
        ("/transactions", {"invoice": 10**9, "type": "payment", "amount": 1}, "invoice"),
    ],
)
def test_bad_bodies_are_400_naming_the_field(
    sandbox: Sandbox, path: str, payload: dict[str, Any], param: str
) -> None:
    before = {s: len(sandbox.data.list(s)) for s in ("customers", "invoices", "transactions")}
    with client(sandbox) as c:
        assert_error(c.post(path, json=payload), 400, param)
    assert {s: len(sandbox.data.list(s)) for s in before} == before


@pytest.mark.parametrize(
    ("raw", "content_type"),
    [
        (b'{"name": "X",', "application/json"),
        (b"[1, 2]", "application/json"),
        (b'{"name": NaN}', "application/json"),
        (b"\xff\xfe", "application/json"),
        (b"name=X&metadata=a&metadata[b]=c", "application/x-www-form-urlencoded"),
        (b"name[=X", "application/x-www-form-urlencoded"),
    ],
)
def test_malformed_bodies_are_400_never_500(sandbox: Sandbox, raw: bytes, content_type: str) -> None:
    with client(sandbox) as c:
        r = c.post("/customers", content=raw, headers={"Content-Type": content_type})
    assert r.status_code == 400 and set(r.json()) == {"type", "message", "param"} and r.json()["param"]


def test_update_rules(sandbox: Sandbox) -> None:
    inv = next(i for i in sandbox.data.list("invoices") if i["status"] not in ("voided", "paid"))
    with client(sandbox) as c:
        r = c.patch(
            f"/invoices/{inv['id']}",
            json={"items": [{"name": "Only", "quantity": 2, "unit_cost": 7}], "metadata": {"po": "17"}},
        )
        got = body(r)
        assert r.status_code == 200 and got["subtotal"] == 14 and got["metadata"] == {"po": "17"}
        assert got["updated_at"] >= inv["updated_at"] and got["created_at"] == inv["created_at"]
        assert_error(c.patch(f"/invoices/{inv['id']}", json={"customer": 2}), 400, "customer")
        taken = next(i["number"] for i in sandbox.data.list("invoices") if i["id"] != inv["id"])
        assert_error(c.patch(f"/invoices/{inv['id']}", json={"number": taken}), 400, "number")
        assert_error(c.patch(f"/invoices/{inv['id']}", json={"total": 5}), 400, "total")
        tx = sandbox.data.list("transactions")[0]
        assert_error(c.patch(f"/transactions/{tx['id']}", json={"invoice": 3}), 400, "invoice")
        assert_error(c.patch("/customers/999999", json={"name": "x"}), 404, None)
        # Digits `isdigit()` accepts and `int()` refuses: no such object, not a 500.
        assert_error(c.get("/invoices/%C2%B9"), 404, None)
        assert_error(c.patch("/customers/%C2%B9", json={"name": "x"}), 404, None)


def test_deletes_emit_events_and_cascade_so_money_never_dangles(sandbox: Sandbox) -> None:
    tx = next(t for t in sandbox.data.list("transactions") if t["invoice"] is not None)
    with client(sandbox) as c:
        assert c.delete(f"/transactions/{tx['id']}").status_code == 204
        assert_error(c.get(f"/transactions/{tx['id']}"), 404, None)
        assert_error(c.delete(f"/transactions/{tx['id']}"), 404, None)
        kinds = [e["type"] for e in sandbox.data.list("events")]
        assert kinds == ["transaction.deleted", "invoice.updated"]

        inv = next(
            i
            for i in sandbox.data.list("invoices")
            if any(t["invoice"] == i["id"] for t in sandbox.data.list("transactions"))
        )
        linked = sorted(t["id"] for t in sandbox.data.list("transactions") if t["invoice"] == inv["id"])
        assert c.delete(f"/invoices/{inv['id']}").status_code == 204
        deleted = [(e["type"], e["data"]["object"]["id"]) for e in sandbox.data.list("events")[2:]]
        assert deleted == [("transaction.deleted", t) for t in linked] + [("invoice.deleted", inv["id"])]

        cust = inv["customer"]
        owned = {
            s: {o["id"] for o in sandbox.data.list(s) if o["customer"] == cust}
            for s in ("invoices", "transactions")
        }
        assert c.delete(f"/customers/{cust}").status_code == 204
    assert all(o["customer"] != cust for s in ("invoices", "transactions") for o in sandbox.data.list(s))
    gone = {
        (e["type"], e["data"]["object"]["id"])
        for e in sandbox.data.list("events")
        if e["type"].endswith(".deleted")
    }
    assert {("invoice.deleted", i) for i in owned["invoices"]} <= gone
    assert {("transaction.deleted", t) for t in owned["transactions"]} <= gone
    assert ("customer.deleted", cust) in gone


def test_auth_routes_and_methods(sandbox: Sandbox) -> None:
    with httpx.Client(base_url=sandbox.url) as anon:
        assert_error(anon.get("/invoices"), 401, None)
        assert_error(anon.get("/invoices", auth=("sk_wrong", "")), 401, None)
        assert_error(anon.get("/invoices", auth=(sandbox.api_key, "password")), 401, None)
        token = base64.b64encode(sandbox.api_key.encode()).decode()  # no colon at all
        assert_error(anon.get("/invoices", headers={"Authorization": f"Basic {token}"}), 401, None)
        assert_error(anon.get("/invoices", headers={"Authorization": f"Bearer {sandbox.api_key}"}), 401, None)
        assert_error(anon.get("/invoices", headers={"Authorization": "Basic !!!"}), 401, None)
    with client(sandbox) as c:
        assert_error(c.get("/subscriptions"), 404, None)
        assert_error(c.get("/invoices/abc"), 404, None)
        assert_error(c.get("/invoices/1/attachments/2/x"), 404, None)
        assert_error(c.get("/"), 404, None)
        assert c.put("/invoices/1", json={}).status_code == 405
        assert c.request("OPTIONS", "/invoices").status_code == 405
        head = c.head("/invoices/1")
        assert head.status_code == 405 and head.content == b""
        assert c.post("/events", json={}).status_code == 405
        r = c.get("/invoices/1")
        assert r.status_code == 200 and r.headers["Date"].endswith("GMT")


def test_idempotency_key_replays_the_first_response(sandbox: Sandbox) -> None:
    inv = next(
        i
        for i in sandbox.data.list("invoices")
        if i["balance"] > 1 and i["status"] not in ("draft", "voided")
    )
    payload = {"invoice": inv["id"], "type": "payment", "amount": 1, "method": "wire"}
    with client(sandbox) as c:
        first = c.post("/transactions", json=payload, headers={"Idempotency-Key": "ext-42"})
        again = c.post("/transactions", json=payload, headers={"Idempotency-Key": "ext-42"})
        assert first.status_code == again.status_code == 201 and first.content == again.content
        other = c.post("/transactions", json=payload, headers={"Idempotency-Key": "ext-43"})
        assert other.json()["id"] != first.json()["id"]
        assert_error(
            c.patch(f"/transactions/{first.json()['id']}", json={}, headers={"Idempotency-Key": "ext-42"}),
            400,
            "Idempotency-Key",
        )
        bad = c.post("/transactions", json={**payload, "amount": -1}, headers={"Idempotency-Key": "ext-44"})
        assert (
            c.post("/transactions", json=payload, headers={"Idempotency-Key": "ext-44"}).content
            == bad.content
        )
    payments = [
        t
        for t in sandbox.data.list("transactions")
        if t["invoice"] == inv["id"] and t["method"] == "wire" and t["amount"] == 1
    ]
    assert len(payments) == 2
    assert sandbox.data.get("invoices", inv["id"])["balance"] == inv["balance"] - 2  # type: ignore[index]


def test_overpayment_is_a_credit_and_closed_invoices_refuse_payments(sandbox: Sandbox) -> None:
    cid = customer_id(sandbox)
    with client(sandbox) as c:
        inv = body(c.post("/invoices", json={"customer": cid, "items": [{"unit_cost": 10}]}))
        c.post("/transactions", json={"invoice": inv["id"], "type": "payment", "amount": 15})
        over = body(c.get(f"/invoices/{inv['id']}"))
        assert over["balance"] == Decimal("-5.00") and over["paid"] is True
        other = body(
            c.post("/invoices", json={"customer": cid, "items": [{"unit_cost": 10}], "closed": True})
        )
        assert_error(
            c.post("/transactions", json={"invoice": other["id"], "type": "payment", "amount": 1}),
            400,
            "invoice",
        )
        credit = c.post("/transactions", json={"customer": cid, "type": "adjustment", "amount": -20})
        assert (
            credit.status_code == 201
            and body(credit)["method"] == "balance"
            and body(credit)["amount"] == Decimal("-20.00")
        )


def test_payment_terms_of_digits_int_refuses_give_no_due_date(sandbox: Sandbox) -> None:
    with client(sandbox) as c:
        customer = body(c.post("/customers", json={"name": "Terms", "payment_terms": "NET ¹"}))
        assert customer["payment_terms"] == "NET ¹"
        invoice = c.post(
            "/invoices", json={"customer": customer["id"], "items": [{"name": "x", "unit_cost": 1}]}
        )
        assert invoice.status_code == 201, invoice.text
        assert body(invoice)["due_date"] is None
