"""mappings/hubspot.toml: valid for the connector's tables, and what it makes of API objects."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from connectors.hubspot import HubSpotConnector
from syncd.mapping import check_mapping, load_mapping
from syncd.plugin import MappedRecord, Record
from tests.hubspot.fake_hubspot import FakeHubSpot, serve
from tests.hubspot.helpers import MAPPING, connector

EXAMPLES = Path(__file__).parents[1] / "fixtures" / "api-examples"  # copies of the API reference's examples


def _example(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EXAMPLES / name).read_text(), parse_float=Decimal)
    return data


def _apply(stream: str, obj: dict[str, Any], customer: dict[str, Any] | None = None) -> dict[str, Any]:
    mapping = load_mapping(MAPPING, HubSpotConnector.tables)
    record = Record(stream, str(obj["id"]), int(obj["updated_at"]), obj)
    return mapping.apply(record, lambda s, rid: customer if s == "customers" else None)


def test_mapping_is_valid_for_the_connector_tables() -> None:
    assert check_mapping(MAPPING, HubSpotConnector.tables) == []
    mapping = load_mapping(MAPPING, HubSpotConnector.tables)
    assert mapping.tables_for("customers") == ["companies", "contacts"]
    assert mapping.tables_for("invoices") == ["deals"]
    assert mapping.tables_for("transactions") == []


def test_customer_becomes_company_and_billing_contact() -> None:
    cust = _example("customers/object.json")
    tables = _apply("customers", cust)
    [company] = tables["companies"]
    assert company["invoiced_customer_id"] == "15444"
    assert company["name"] == "Acme" and company["country"] == "US"
    [contact] = tables["contacts"]
    assert contact["invoiced_customer_id"] == "15444" and contact["email"] == "billing@acmecorp.com"


@pytest.mark.parametrize(
    ("status", "stage"),
    [
        ("paid", "closedwon"),
        ("past_due", "contractsent"),
        ("sent", "presentationscheduled"),
        ("odd", "qualifiedtobuy"),
    ],
)
def test_invoice_becomes_deal_with_stage_from_status(status: str, stage: str) -> None:
    cust = _example("customers/object.json")
    inv = {**_example("invoicing/invoices/object.json"), "status": status}
    [deal] = _apply("invoices", inv, cust)["deals"]
    assert deal == {
        "invoiced_invoice_id": "46225",
        "invoiced_customer_id": "15444",
        "dealname": "Invoice INV-0016",
        "amount": Decimal("51.15"),
        "deal_currency_code": "USD",
        "closedate": "2014-12-02T06:00:00+00:00",  # ISO 8601 date-time, as HubSpot documents
        "pipeline": "default",
        "dealstage": stage,
    }


@pytest.mark.parametrize("change", [{"draft": True, "status": "draft"}, {"status": "voided"}])
def test_draft_and_voided_invoices_have_no_deal(change: dict[str, Any]) -> None:
    inv = {**_example("invoicing/invoices/object.json"), **change}
    assert _apply("invoices", inv)["deals"] == []


def test_mapped_example_objects_reach_hubspot() -> None:
    cust = _example("customers/object.json")
    inv = _example("invoicing/invoices/object.json")
    hub = FakeHubSpot()
    hub.add_unique_properties()
    with serve(hub) as url:
        conn = connector(url)
        conn.open()
        c_rec = Record("customers", "15444", 1, cust)
        i_rec = Record("invoices", "46225", 1, inv)
        assert conn.write("customers", [MappedRecord(c_rec, _apply("customers", cust))]) == []
        assert conn.write("invoices", [MappedRecord(i_rec, _apply("invoices", inv, cust))]) == []
    company = hub.by_key("companies", "invoiced_customer_id")["15444"]
    deal = hub.by_key("deals", "invoiced_invoice_id")["46225"]
    assert company["properties"]["description"] == "Invoiced customer CUST-0001"
    assert company["properties"]["phone"] == ""  # a missing value clears the HubSpot property
    assert deal["properties"]["amount"] == "51.15" and deal["properties"]["dealname"] == "Invoice INV-0016"
    assert hub.associated("deals", deal["id"], "companies") == {company["id"]}
