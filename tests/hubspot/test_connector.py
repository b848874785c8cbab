"""The HubSpot connector against the loopback stand-in (real HTTP on 127.0.0.1)."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from structlog.testing import capture_logs

from connectors.hubspot import HubSpotConnector, HubSpotSettings
from syncd.errors import ConfigError, ConnectorError
from tests.hubspot.fake_hubspot import TOKEN, FakeHubSpot, serve
from tests.hubspot.helpers import connector, context, customer, deleted, invoice


@pytest.fixture
def fake() -> FakeHubSpot:
    hub = FakeHubSpot()
    hub.add_unique_properties()
    return hub


@pytest.fixture
def url(fake: FakeHubSpot) -> Iterator[str]:
    with serve(fake) as base:
        yield base


def opened(url: str, **settings: Any) -> HubSpotConnector:
    conn = connector(url, **settings)
    conn.open()
    return conn


def test_open_names_the_missing_unique_property(url: str) -> None:
    fake_empty = FakeHubSpot()
    with serve(fake_empty) as base:
        conn = connector(base)
        with pytest.raises(ConfigError, match="companies property 'invoiced_customer_id' does not exist"):
            conn.open()
    assert not fake_empty.calls("POST", r"/crm/v3/properties/\w+")


def test_open_creates_unique_properties_when_configured() -> None:
    hub = FakeHubSpot()
    with serve(hub) as base:
        opened(base, create_properties=True)
    created = {
        (t, name) for t, props in hub.properties.items() for name, p in props.items() if p["hasUniqueValue"]
    }
    assert created == {
        ("companies", "invoiced_customer_id"),
        ("contacts", "invoiced_customer_id"),
        ("deals", "invoiced_invoice_id"),
    }
    body = hub.calls("POST", r"/crm/v3/properties/deals")[0]
    assert body["type"] == "string" and body["fieldType"] == "text" and body["groupName"] == "dealinformation"


def test_open_refuses_a_property_that_is_not_unique(fake: FakeHubSpot, url: str) -> None:
    fake.properties["deals"]["invoiced_invoice_id"]["hasUniqueValue"] = False
    with pytest.raises(ConfigError, match="deals property 'invoiced_invoice_id' exists but is not unique"):
        opened(url)


def test_open_without_token_fails_naming_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HUBSPOT_TOKEN", raising=False)
    conn = HubSpotConnector(
        HubSpotSettings(enabled=True, base_url="http://127.0.0.1:9"),
        context(),
    )
    with pytest.raises(ConfigError, match=r"connectors\.hubspot\.token"):
        conn.open()


def test_upserts_associate_and_rerun_creates_no_duplicates(fake: FakeHubSpot, url: str) -> None:
    conn = opened(url)
    customers = [customer("1", "Acme"), customer("2", "Globex", email="ap@globex.test")]
    invoices = [invoice("10", "1"), invoice("11", "1", "20.00", "paid"), invoice("12", "2", "7.5")]
    for _ in range(2):
        assert conn.write("customers", customers) == []
        assert conn.write("invoices", invoices) == []
        conn.flush()
    invoices[0] = invoice("10", "1", "99.99")
    assert conn.write("invoices", invoices) == []

    companies = fake.by_key("companies", "invoiced_customer_id")
    deals = fake.by_key("deals", "invoiced_invoice_id")
    contacts = fake.by_key("contacts", "invoiced_customer_id")
    assert set(companies) == {"1", "2"} and set(deals) == {"10", "11", "12"} and set(contacts) == {"1", "2"}
    assert (
        len(fake.live("companies")) == 2 and len(fake.live("deals")) == 3 and len(fake.live("contacts")) == 2
    )
    assert deals["10"]["properties"]["amount"] == "99.99"
    assert deals["11"]["properties"]["dealstage"] == "closedwon"
    assert contacts["2"]["properties"]["email"] == "ap@globex.test"
    for iid, cid in (("10", "1"), ("11", "1"), ("12", "2")):
        assert fake.associated("deals", deals[iid]["id"], "companies") == {companies[cid]["id"]}
    assert fake.associated("contacts", contacts["1"]["id"], "companies") == {companies["1"]["id"]}
    # Only upserts keyed on the unique property: never a plain create.
    assert not fake.calls("POST", r"/crm/v3/objects/\w+/batch/create")
    for body in fake.calls("POST", r"/crm/v3/objects/deals/batch/upsert"):
        assert {i["idProperty"] for i in body["inputs"]} == {"invoiced_invoice_id"}
        assert all("invoiced_customer_id" not in i["properties"] for i in body["inputs"])


def test_batches_hold_at_most_batch_size_inputs(fake: FakeHubSpot, url: str) -> None:
    conn = opened(url, batch_size=100)
    conn.write("customers", [customer(str(i), f"C{i}", email=None) for i in range(1, 251)])
    sizes = [len(b["inputs"]) for b in fake.calls("POST", r"/crm/v3/objects/companies/batch/upsert")]
    assert sizes == [100, 100, 50]
    assert len(fake.live("companies")) == 250
    assert not fake.live("contacts")  # no email, no name: no contact


def test_one_failing_input_goes_to_dead_letters_the_rest_is_delivered(fake: FakeHubSpot, url: str) -> None:
    fake.reject = lambda t, p: (
        "amount must be positive" if t == "deals" and p.get("amount", "").startswith("-") else None
    )
    conn = opened(url)
    conn.write("customers", [customer("1")])
    rejected = conn.write("invoices", [invoice("10", "1"), invoice("11", "1", "-5.00"), invoice("12", "1")])
    assert [(r.stream, r.record_id) for r in rejected] == [("invoices", "11")]
    assert "amount must be positive" in rejected[0].reason and "VALIDATION_ERROR" in rejected[0].reason
    assert set(fake.by_key("deals", "invoiced_invoice_id")) == {"10", "12"}


def test_a_refused_company_keeps_its_last_good_state_contact_included(fake: FakeHubSpot, url: str) -> None:
    conn = opened(url)
    assert conn.write("customers", [customer("1", "Acme", email="old@acme.test")]) == []
    fake.reject = lambda t, p: (
        "name too long" if t == "companies" and p.get("name") == "Acme Renamed" else None
    )
    rejected = conn.write("customers", [customer("1", "Acme Renamed", email="new@acme.test")])
    assert [r.record_id for r in rejected] == ["1"]
    assert fake.by_key("companies", "invoiced_customer_id")["1"]["properties"]["name"] == "Acme"
    # the contact is not half-updated either: the record is retried whole
    assert fake.by_key("contacts", "invoiced_customer_id")["1"]["properties"]["email"] == "old@acme.test"


def test_whole_batch_rejection_is_split_to_deliver_the_rest(fake: FakeHubSpot, url: str) -> None:
    fake.reject_whole_batch = True
    fake.reject = lambda t, p: "bad amount" if t == "deals" and p.get("amount") == "-5.00" else None
    conn = opened(url)
    conn.write("customers", [customer("1")])
    rejected = conn.write(
        "invoices", [invoice(str(i), "1", "-5.00" if i == 13 else "1.00") for i in range(10, 18)]
    )
    assert [r.record_id for r in rejected] == ["13"]
    assert "bad amount" in rejected[0].reason
    assert set(fake.by_key("deals", "invoiced_invoice_id")) == {str(i) for i in range(10, 18)} - {"13"}


def test_rate_limit_waits_for_the_rolling_window(fake: FakeHubSpot) -> None:
    sleeps: list[float] = []
    with serve(fake) as base:
        conn = connector(base, sleeps)
        conn.open()
        fake.fail_429 = 2
        with capture_logs() as logs:
            assert conn.write("customers", [customer("1")]) == []
    # No Retry-After (HubSpot sends none): the policy's 10-second window, from our own requests.
    assert sleeps == [10.0, 10.0]
    assert len(fake.live("companies")) == 1
    retries = [e for e in logs if e["event"] == "hubspot.retry"]
    assert len(retries) == 2 and "429" in retries[0]["error"]
    assert TOKEN not in repr(logs)


def test_persistent_rate_limit_fails_the_batch(fake: FakeHubSpot) -> None:
    with serve(fake) as base:
        conn = connector(base, [])
        conn.open()
        fake.fail_429 = 10
        with pytest.raises(ConnectorError, match="429"):
            conn.write("customers", [customer("1")])


def test_deal_before_its_customer_gets_a_company_filled_in_later(fake: FakeHubSpot, url: str) -> None:
    conn = opened(url)
    assert conn.write("invoices", [invoice("10", "7")]) == []
    stub = fake.by_key("companies", "invoiced_customer_id")["7"]
    deal = fake.by_key("deals", "invoiced_invoice_id")["10"]
    assert fake.associated("deals", deal["id"], "companies") == {stub["id"]}
    conn.write("customers", [customer("7", "Initech")])
    assert [c["id"] for c in fake.live("companies")] == [stub["id"]]
    assert stub["properties"]["name"] == "Initech"


def test_deleted_voided_or_filtered_invoices_archive_their_deal(fake: FakeHubSpot, url: str) -> None:
    conn = opened(url)
    conn.write("customers", [customer("1")])
    conn.write("invoices", [invoice(str(i), "1") for i in (10, 11, 12, 13)])
    voided = invoice("11", "1", status="voided")
    filtered = invoice("12", "1")
    filtered = type(filtered)(filtered.record, {})  # e.g. went back to draft: the mapping skips it
    assert (
        conn.write("invoices", [deleted("invoices", "10"), voided, filtered, deleted("invoices", "99")]) == []
    )
    assert set(fake.by_key("deals", "invoiced_invoice_id")) == {"13"}
    archived = fake.calls("POST", r"/crm/v3/objects/deals/batch/archive")
    assert len(archived) == 1 and len(archived[0]["inputs"]) == 3


@pytest.mark.parametrize("archive", [False, True])
def test_deleted_customer_archives_company_only_when_configured(
    fake: FakeHubSpot, url: str, archive: bool
) -> None:
    conn = opened(url, archive_deleted_companies=archive)
    assert conn.write("customers", [customer("1"), customer("2", email="ap@two.test")]) == []
    assert conn.write("customers", [deleted("customers", "1")]) == []
    expected = {"2"} if archive else {"1", "2"}
    assert set(fake.by_key("companies", "invoiced_customer_id")) == expected
    assert set(fake.by_key("contacts", "invoiced_customer_id")) == expected
    assert bool(fake.calls("POST", r"/crm/v3/objects/companies/batch/archive")) is archive


def test_wrong_token_is_a_connector_error_without_the_token(fake: FakeHubSpot) -> None:
    fake.token = "pat-other"
    with serve(fake) as base:
        conn = connector(base)
        with pytest.raises(ConnectorError, match="401") as info:
            conn.open()
    assert TOKEN not in str(info.value)


def test_money_is_sent_exactly(fake: FakeHubSpot, url: str) -> None:
    conn = opened(url)
    conn.write("invoices", [invoice("10", "1", "1234567890.10")])
    body = fake.calls("POST", r"/crm/v3/objects/deals/batch/upsert")[0]
    assert body["inputs"][0]["properties"]["amount"] == "1234567890.10"
    assert Decimal(fake.by_key("deals", "invoiced_invoice_id")["10"]["properties"]["amount"]) == Decimal(
        "1234567890.10"
    )


def test_daily_limit_fails_at_once_without_retrying(fake: FakeHubSpot) -> None:
    sleeps: list[float] = []
    with serve(fake) as base:
        conn = connector(base, sleeps)
        conn.open()
        fake.fail_429, fake.limit_policy = 5, "DAILY"
        with pytest.raises(ConnectorError, match="daily API limit reached"):
            conn.write("customers", [customer("1")])
    assert sleeps == []
    assert fake.fail_429 == 4


def test_two_versions_of_one_object_in_a_write_send_the_last(fake: FakeHubSpot, url: str) -> None:
    conn = opened(url)
    assert conn.write("customers", [customer("1", "Old Name"), customer("1", "New Name")]) == []
    [body] = fake.calls("POST", r"/crm/v3/objects/companies/batch/upsert")
    assert [i["properties"]["name"] for i in body["inputs"]] == ["New Name"]
    assert fake.by_key("companies", "invoiced_customer_id")["1"]["properties"]["name"] == "New Name"


@pytest.mark.parametrize("whole_batch", [False, True], ids=["207-per-input", "409-whole-batch"])
def test_existing_contact_with_the_billing_email_is_taken_over(
    fake: FakeHubSpot, url: str, whole_batch: bool
) -> None:
    fake.reject_whole_batch = whole_batch
    mine = fake.add_object("contacts", {"email": "billing@acme.test", "firstname": "Wile"})
    theirs = fake.add_object("contacts", {"email": "ap@globex.test", "invoiced_customer_id": "9"})
    conn = opened(url)
    rejected = conn.write(
        "customers", [customer("1", "Acme"), customer("2", "Globex", email="ap@globex.test")]
    )
    contacts = fake.by_key("contacts", "invoiced_customer_id")
    assert contacts["1"]["id"] == mine and contacts["1"]["properties"]["firstname"] == "Wile"
    company = fake.by_key("companies", "invoiced_customer_id")["1"]
    assert fake.associated("contacts", mine, "companies") == {company["id"]}
    assert len(fake.live("contacts")) == 2  # nothing created next to them
    assert contacts["9"]["id"] == theirs  # linked to another customer: left alone, record rejected
    assert [r.record_id for r in rejected] == ["2"]
    assert f"HubSpot contacts {theirs} belongs to Invoiced id 9" in rejected[0].reason
    assert "Contact already exists" in rejected[0].reason


def test_token_from_environment_is_used_and_masked_in_logs(
    fake: FakeHubSpot, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from syncd import log as syncd_log

    monkeypatch.setenv("HUBSPOT_TOKEN", TOKEN)
    conn = HubSpotConnector(HubSpotSettings(enabled=True, base_url=url), context())
    conn.open()
    assert conn.write("customers", [customer("1")]) == []
    conn.close()
    assert len(fake.live("companies")) == 1
    assert syncd_log.redact_text(f"Bearer {TOKEN}") == "Bearer ***"


def test_only_mapped_tables_need_their_property(fake: FakeHubSpot, url: str) -> None:
    del fake.properties["contacts"]["invoiced_customer_id"]
    conn = connector(url)
    conn.context.columns = {"companies": ["invoiced_customer_id", "name"], "deals": ["invoiced_invoice_id"]}
    conn.open()  # contacts are not mapped: their property is not required
    with pytest.raises(ConfigError, match="contacts property 'invoiced_customer_id'"):
        connector(url).open()


def test_a_row_that_cannot_be_sent_is_rejected_naming_the_column(fake: FakeHubSpot, url: str) -> None:
    conn = opened(url)
    good, bad = invoice("10", "1"), invoice("11", "1")
    bad = type(bad)(bad.record, {"deals": [{**bad.tables["deals"][0], "amount": 1.1}]})
    rejected = conn.write("invoices", [good, bad])
    assert [(r.record_id, r.reason) for r in rejected] == [
        ("11", "deals.amount: a float cannot be sent exactly; map it to a decimal")
    ]
    assert set(fake.by_key("deals", "invoiced_invoice_id")) == {"10"}
