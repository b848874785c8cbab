"""Building connectors and mapped records by hand (what mappings/hubspot.toml produces)."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

from connectors.hubspot import HubSpotClient, HubSpotConnector, HubSpotSettings, RetryPolicy
from connectors.hubspot.client import wire_value
from syncd.mapping import load_mapping
from syncd.plugin import ConnectorContext, MappedRecord, OutputStore, Record
from tests.hubspot.fake_hubspot import TOKEN, FakeHubSpot

ROOT = Path(__file__).resolve().parents[2]
MAPPING = ROOT / "mappings" / "hubspot.toml"


class MemoryOutputs:
    """The connector's rows in the store, in memory (HubSpot keeps only which companies it wrote)."""

    def __init__(self) -> None:
        self.held: dict[tuple[str, str], dict[str, list[dict[str, Any]]]] = {}

    def put_many(self, items: Any) -> None:
        for stream, rid, tables in items:
            self.held[(stream, rid)] = {t: [dict(r) for r in rows] for t, rows in tables.items()}

    def delete(self, stream: str, record_id: str) -> None:
        self.held.pop((stream, record_id), None)

    def rows(self, table: str) -> Iterator[dict[str, Any]]:
        for key in sorted(self.held):
            yield from self.held[key].get(table, [])


def context(outputs: MemoryOutputs | None = None, fill_only: Any = None) -> ConnectorContext:
    """The context the engine would hand the connector."""
    return ConnectorContext(
        name="hubspot", outputs=cast(OutputStore, outputs or MemoryOutputs()), fill_only=fill_only or {}
    )


class Clock:
    """Time that passes only when the client sleeps (recorded in `sleeps`): no real waiting."""

    def __init__(self, sleeps: list[float] | None = None) -> None:
        self.now = 0.0
        self.sleeps = sleeps if sleeps is not None else []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def connector(
    url: str,
    sleeps: list[float] | None = None,
    outputs: MemoryOutputs | None = None,
    fill_only: Any = None,
    **settings: Any,
) -> HubSpotConnector:
    """A HubSpot connector for `url`, sleeping into `sleeps` instead of waiting."""
    conf = HubSpotSettings(enabled=True, token=TOKEN, base_url=url, **settings)
    clock = Clock(sleeps)
    client = HubSpotClient.connect(url, TOKEN, policy=RetryPolicy(attempts=4, sleep=clock.sleep, clock=clock))
    return HubSpotConnector(conf, context(outputs, fill_only), client=client)


def customer(
    cid: str, name: str = "Acme", email: str | None = "billing@acme.test", **extra: Any
) -> MappedRecord:
    data = {"id": int(cid), "object": "customer", "name": name, "email": email, "updated_at": 1, **extra}
    tables: dict[str, list[dict[str, Any]]] = {
        "companies": [{"invoiced_customer_id": cid, "name": name, "country": "US"}],
        "contacts": [{"invoiced_customer_id": cid, "email": email, "lastname": None}],
    }
    return MappedRecord(Record("customers", cid, 1, data), tables)


def invoice(
    iid: str, cid: str, total: str = "51.15", status: str = "sent", number: str | None = None
) -> MappedRecord:
    number = number or f"INV-{iid}"
    data = {
        "id": int(iid),
        "object": "invoice",
        "customer": int(cid),
        "status": status,
        "total": Decimal(total),
        "currency": "usd",
        "number": number,
        "updated_at": 1,
    }
    tables = {
        "deals": [
            {
                "invoiced_invoice_id": iid,
                "invoiced_customer_id": cid,
                "dealname": f"{number} – Acme",
                "amount": Decimal(total),
                "deal_currency_code": "USD",
                "closedate": "2024-03-31",
                "pipeline": "default",
                "dealstage": "closedwon" if status == "paid" else "presentationscheduled",
            }
        ]
    }
    return MappedRecord(Record("invoices", iid, 1, data), tables)


def deleted(stream: str, rid: str) -> MappedRecord:
    return MappedRecord(Record(stream, rid, 0, {"id": rid}, deleted=True), {})


STAGES = {  # mappings/hubspot.toml [values.deal_stage], fallback qualifiedtobuy
    "not_sent": "qualifiedtobuy",
    "sent": "presentationscheduled",
    "viewed": "decisionmakerboughtin",
    "pending": "contractsent",
    "past_due": "contractsent",
    "paid": "closedwon",
}


def assert_hubspot_matches(
    hub: FakeHubSpot, customer_list: list[dict[str, Any]], invoice_list: list[dict[str, Any]]
) -> None:
    """Every customer is one company (and contact), every open invoice one deal on its company."""
    mapping = load_mapping(MAPPING)
    customers = {str(c["id"]): c for c in customer_list}
    invoices = {str(i["id"]): i for i in invoice_list}

    def resolve(stream: str, rid: str) -> dict[str, Any] | None:
        return {"customers": customers, "invoices": invoices}.get(stream, {}).get(rid)

    companies = hub.by_key("companies", "invoiced_customer_id")
    contacts = hub.by_key("contacts", "invoiced_customer_id")
    deals = hub.by_key("deals", "invoiced_invoice_id")
    assert set(companies) == set(customers)
    for cid, cust in customers.items():
        company = companies[cid]["properties"]
        assert company["name"] == (cust["name"] or "").strip()
        [row] = mapping.apply(Record("customers", cid, int(cust["updated_at"]), cust), resolve)["companies"]
        # A fill-only column empty in Invoiced is not sent (an unset property) rather than cleared.
        fill = set(mapping.fill_only().get("companies", ()))
        sent = {k: v for k, v in company.items() if not (k in fill and v == "")}
        assert sent == {k: wire_value(v) for k, v in row.items() if not (k in fill and v in (None, ""))}, cid
        if cust.get("email"):
            assert contacts[cid]["properties"]["email"] == cust["email"].strip().lower()
            assert hub.associated("contacts", contacts[cid]["id"], "companies") == {companies[cid]["id"]}

    open_invoices = {i: inv for i, inv in invoices.items() if not inv["draft"] and inv["status"] != "voided"}
    assert set(deals) == set(open_invoices)
    for iid, inv in open_invoices.items():
        deal = deals[iid]["properties"]
        cid = str(inv["customer"]["id"] if isinstance(inv["customer"], dict) else inv["customer"])
        assert Decimal(deal["amount"]) == inv["total"], iid
        assert deal["deal_currency_code"] == inv["currency"].upper()
        assert deal["dealstage"] == STAGES.get(inv["status"], "qualifiedtobuy")
        assert deal["dealname"] == f"Invoice {inv['number']}"
        assert "invoiced_customer_id" not in deal
        assert hub.associated("deals", deals[iid]["id"], "companies") == {companies[cid]["id"]}, iid
        [row] = mapping.apply(Record("invoices", iid, int(inv["updated_at"]), inv), resolve)["deals"]
        assert deal == {k: wire_value(v) for k, v in row.items() if k != "invoiced_customer_id"}, iid
