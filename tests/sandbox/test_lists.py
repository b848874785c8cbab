"""List endpoints behave as documented: paging, Link, X-Total-Count, sort, filters, windows, expand, events."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from syncd.sandbox import Sandbox
from tests.sandbox.helpers import assert_error, body, client, pages


@pytest.fixture
def sb(make_sandbox: Callable[..., Sandbox]) -> Sandbox:
    return make_sandbox(customers=15, invoices=230, transactions=90)


def test_pages_link_header_and_total(sb: Sandbox) -> None:
    with client(sb) as c:
        r = c.get("/invoices", params={"per_page": "50", "page": "2", "sort": "id asc", "expand": "customer"})
        assert r.status_code == 200 and r.headers["X-Total-Count"] == "230"
        links = {rel: link["url"] for rel, link in r.links.items()}
        assert set(links) == {"self", "first", "previous", "next", "last"}
        assert all(url.startswith(sb.url + "/invoices?") for url in links.values())
        assert "page=5" in links["last"] and "page=3" in links["next"] and "page=1" in links["previous"]
        assert "expand=customer" in links["next"] and "sort=id+asc" in links["next"]
        assert "," not in r.headers["Link"].split(">")[0]  # the SDK splits the header on commas
        first = c.get("/invoices", params={"per_page": "50"})
        assert set(first.links) == {"self", "first", "next", "last"}
        last = c.get(links["last"])
        assert "next" not in last.links and len(last.json()) == 30
        beyond = c.get("/invoices", params={"page": "9"})
        assert beyond.status_code == 200 and beyond.json() == [] and beyond.headers["X-Total-Count"] == "230"
        default = c.get("/invoices")
        assert len(default.json()) == 100 and r.headers["Date"]


def test_walk_by_next_link_returns_every_record_once_in_id_order(sb: Sandbox) -> None:
    with client(sb) as c:
        got = pages(c, "/transactions", {"per_page": "7"})
    assert [t["id"] for t in got] == [t["id"] for t in sb.data.list("transactions")]


@pytest.mark.parametrize(
    ("stream", "column"),
    [
        ("invoices", "updated_at"),
        ("invoices", "date"),
        ("invoices", "number"),
        ("customers", "name"),
        ("customers", "created_at"),
        ("transactions", "date"),
        ("transactions", "id"),
    ],
)
@pytest.mark.parametrize("direction", ["asc", "desc"])
def test_sort_with_ties_broken_by_id_ascending(sb: Sandbox, stream: str, column: str, direction: str) -> None:
    with client(sb) as c:
        got = pages(c, f"/{stream}", {"sort": f"{column} {direction}", "per_page": "100"})
    records = sb.data.list(stream)
    expected = sorted(records, key=lambda o: o["id"])
    expected.sort(key=lambda o: o[column], reverse=direction == "desc")
    assert [o["id"] for o in got] == [o["id"] for o in expected]
    if column == "updated_at":
        values = [o["updated_at"] for o in records]
        assert len(values) - len(set(values)) > 10, "seeded data must share seconds"


def test_updated_after_is_strict_and_uses_the_index(sb: Sandbox) -> None:
    stamps = sorted({o["updated_at"] for o in sb.data.list("invoices")})
    pivot = stamps[len(stamps) // 2]
    with client(sb) as c:
        for order in ("asc", "desc"):
            got = pages(c, "/invoices", {"updated_after": str(pivot), "sort": f"updated_at {order}"})
            want = sorted(
                (o for o in sb.data.list("invoices") if o["updated_at"] > pivot), key=lambda o: o["id"]
            )
            want.sort(key=lambda o: o["updated_at"], reverse=order == "desc")
            assert [o["id"] for o in got] == [o["id"] for o in want]
        by_id = pages(c, "/invoices", {"updated_after": str(pivot)})
        assert sorted(o["id"] for o in by_id) == [o["id"] for o in by_id] and len(by_id) == len(want)


def test_filter_metadata_and_date_window(sb: Sandbox) -> None:
    invoices = sb.data.list("invoices")
    dates = sorted(o["date"] for o in invoices)
    start, end = dates[40], dates[120]
    with client(sb) as c:
        window = pages(
            c, "/invoices", {"start_date": str(start), "end_date": str(end), "sort": "updated_at asc"}
        )
        assert {o["id"] for o in window} == {o["id"] for o in invoices if start <= o["date"] <= end}
        assert any(o["date"] == start for o in window) and any(o["date"] == end for o in window)

        paid = pages(c, "/invoices", {"filter[status]": "paid", "filter[currency]": "usd"})
        assert paid and {o["id"] for o in paid} == {
            o["id"] for o in invoices if o["status"] == "paid" and o["currency"] == "usd"
        }
        drafts = pages(c, "/invoices", {"filter[draft]": "true"})
        assert {o["id"] for o in drafts} == {o["id"] for o in invoices if o["draft"]}

        rep = next(
            cu["metadata"]["account_rep"]
            for cu in sb.data.list("customers")
            if "account_rep" in cu["metadata"]
        )
        got = pages(c, "/customers", {"metadata[account_rep]": rep})
        assert {o["id"] for o in got} == {
            o["id"] for o in sb.data.list("customers") if o["metadata"].get("account_rep") == rep
        }
        assert pages(c, "/customers", {"metadata[no_such_key]": "x"}) == []

        tx_dates = sorted(t["date"] for t in sb.data.list("transactions"))
        in_window = pages(
            c, "/transactions", {"start_date": str(tx_dates[10]), "end_date": str(tx_dates[10])}
        )
        assert in_window and all(t["date"] == tx_dates[10] for t in in_window)


def test_expand_customer_and_invoice(sb: Sandbox) -> None:
    tx = next(t for t in sb.data.list("transactions") if t["invoice"] is not None)
    with client(sb) as c:
        one = body(c.get(f"/transactions/{tx['id']}", params={"expand": "customer,invoice"}))
        listed = body(c.get("/invoices", params={"expand": "customer", "per_page": "3"}))
        plain = body(c.get(f"/transactions/{tx['id']}"))
    assert one["invoice"] == sb.data.get("invoices", tx["invoice"])
    assert one["customer"] == sb.data.get("customers", tx["customer"])
    assert plain == sb.data.get("transactions", tx["id"])
    assert all(
        isinstance(inv["customer"], dict) and inv["customer"]["object"] == "customer" for inv in listed
    )


def test_events_list_sort_window_and_type_filter(sb: Sandbox) -> None:
    inv = sb.data.list("invoices")[5]
    sb.data.update("invoices", inv["id"], {"notes": "first"})
    sb.data.update("invoices", inv["id"], {"notes": "second"})
    created = sb.data.create("customers", {"name": "Evented"})
    sb.data.delete("customers", created["id"])
    with client(sb) as c:
        events = body(c.get("/events"))
        kinds = [e["type"] for e in events]
        assert (
            kinds.count("invoice.updated") == 2
            and "customer.created" in kinds
            and "customer.deleted" in kinds
        )
        stamps = [e["timestamp"] for e in events]
        assert stamps == sorted(stamps, reverse=True) and events[0]["object"] == "event"
        update = next(
            e for e in events if e["type"] == "invoice.updated" and e["data"]["object"]["notes"] == "second"
        )
        assert update["data"]["previous"] == {"notes": "first"}
        asc = body(c.get("/events", params={"sort": "id asc"}))
        assert [e["id"] for e in asc] == sorted(e["id"] for e in events)
        deleted = body(c.get("/events", params={"filter[type]": "customer.deleted"}))
        assert [e["data"]["object"]["id"] for e in deleted] == [created["id"]]
        ts = events[0]["timestamp"]
        window = body(c.get("/events", params={"start_date": str(ts), "end_date": str(ts)}))
        assert len(window) == len([e for e in events if e["timestamp"] == ts])
        assert body(c.get("/events", params={"end_date": str(ts - 10**6)})) == []
        one = body(c.get(f"/events/{events[0]['id']}"))
        assert one == events[0]


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"per_page": "101"}, "per_page"),
        ({"per_page": "0"}, "per_page"),
        ({"per_page": "ten"}, "per_page"),
        ({"page": "0"}, "page"),
        ({"page": "x"}, "page"),
        ({"sort": "color asc"}, "sort"),
        ({"sort": "id sideways"}, "sort"),
        ({"sort": ""}, "sort"),
        ({"filter[colour]": "red"}, "filter[colour]"),
        ({"filter[customer]": "abc"}, "filter[customer]"),
        ({"filter[draft]": "maybe"}, "filter[draft]"),
        ({"updated_after": "yesterday"}, "updated_after"),
        ({"start_date": "2024-01-01"}, "start_date"),
        ({"end_date": "-5"}, "end_date"),
    ],
)
def test_bad_list_parameters_are_400_naming_the_param(
    sb: Sandbox, params: dict[str, Any], param: str
) -> None:
    with client(sb) as c:
        assert_error(c.get("/invoices", params=params), 400, param)


def test_strict_pages_require_the_previous_page_of_the_same_query(sb: Sandbox) -> None:
    sb.knobs.strict_pages = True
    with client(sb) as c:
        assert_error(c.get("/invoices", params={"page": "2", "per_page": "50"}), 400, "page")
        assert c.get("/invoices", params={"page": "1", "per_page": "50"}).status_code == 200
        assert_error(c.get("/invoices", params={"page": "2", "per_page": "20"}), 400, "page")  # another query
        assert_error(c.get("/invoices", params={"page": "3", "per_page": "50"}), 400, "page")  # skipped one
        assert c.get("/invoices", params={"page": "2", "per_page": "50"}).status_code == 200
        got = pages(c, "/invoices", {"sort": "updated_at asc", "per_page": "40"})  # following rel=next works
        assert len(got) == 230
    sb.knobs.strict_pages = False
    with client(sb) as c:
        assert c.get("/invoices", params={"page": "4"}).status_code == 200
