"""HubSpot edge cases (issue 15): datetimes, drafts, partly written records, companies deleted in HubSpot."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from syncd.delivery import Delivery, StreamReport, Target
from syncd.mapping import load_mapping
from syncd.plugin import PartialRejection, Record
from syncd.sandbox.data import SandboxData
from syncd.store import Store
from tests.hubspot.fake_hubspot import FakeHubSpot, serve
from tests.hubspot.helpers import MAPPING, MemoryOutputs, connector, customer, deleted, invoice


@pytest.fixture
def fake() -> FakeHubSpot:
    hub = FakeHubSpot()
    hub.add_unique_properties()
    return hub


@pytest.fixture
def url(fake: FakeHubSpot) -> Iterator[str]:
    with serve(fake) as base:
        yield base


def test_closedate_is_sent_as_an_iso_datetime(fake: FakeHubSpot, url: str) -> None:
    # The stand-in refuses a bare date for a datetime property, as HubSpot documents.
    conn = connector(url)
    conn.open()
    assert conn.write("customers", [customer("1")]) == []
    assert conn.write("invoices", [invoice("10", "1")]) == []  # mapped closedate "2024-03-31"
    deal = fake.by_key("deals", "invoiced_invoice_id")["10"]
    assert deal["properties"]["closedate"] == "2024-03-31T00:00:00Z"
    # the default mapping already sends an ISO 8601 date-time
    mapping = load_mapping(MAPPING)
    inv = {"id": 5, "customer": 1, "number": "INV-5", "total": 1, "currency": "usd", "status": "sent"}
    [row] = mapping.apply(Record("invoices", "5", 1, {**inv, "due_date": 1711843200}), lambda s, i: None)[
        "deals"
    ]
    assert row["closedate"] == "2024-03-31T00:00:00+00:00"


def test_drafts_read_no_deal_that_never_existed(fake: FakeHubSpot, url: str) -> None:
    conn = connector(url)
    conn.open()
    draft = invoice("10", "1", status="draft")
    draft = type(draft)(Record("invoices", "10", 1, {**draft.record.data, "draft": True}), {})
    assert conn.write("invoices", [draft]) == []
    assert fake.requests[-1][1].startswith("/crm/v3/properties/")  # nothing after open()


def test_customer_with_refused_contact_is_held_so_deleting_it_archives_its_company(
    fake: FakeHubSpot, url: str, tmp_path: Path
) -> None:
    data = SandboxData.seeded(5, 4, 0, 0)
    customers = data.list("customers")
    bad = str(customers[1]["id"])
    fake.reject = lambda t, p: (
        "INVALID_EMAIL: no" if t == "contacts" and p.get("invoiced_customer_id") == bad else None
    )
    store = Store.open(f"sqlite:///{tmp_path / 'syncd.db'}")
    try:
        conn = connector(url, archive_deleted_companies=True)
        conn.open()
        delivery = Delivery(store, [Target("hubspot", conn, load_mapping(MAPPING))])
        records = [Record("customers", str(c["id"]), int(c["updated_at"]), c) for c in customers]
        delivery.deliver("customers", records, StreamReport())
        [dead] = store.dead_letters()
        assert dead.record_id == bad and "INVALID_EMAIL" in dead.reason
        assert bad in fake.by_key("companies", "invoiced_customer_id")  # the company was written

        delivery.deliver(
            "customers", [Record("customers", bad, 0, {"id": bad}, deleted=True)], StreamReport()
        )
        assert bad not in fake.by_key("companies", "invoiced_customer_id")
    finally:
        store.close()


def test_deal_whose_association_failed_is_partly_written(fake: FakeHubSpot, url: str) -> None:
    conn = connector(url)
    conn.open()
    assert conn.write("customers", [customer("1")]) == []
    company = fake.by_key("companies", "invoiced_customer_id")["1"]
    company["archived"] = True  # deleted in HubSpot while syncd remembers its id
    [refused] = conn.write("invoices", [invoice("10", "1")])
    assert isinstance(refused, PartialRejection) and "association" in refused.reason
    assert "10" in fake.by_key("deals", "invoiced_invoice_id")


def test_company_deleted_in_hubspot_is_not_recreated_as_a_nameless_stub(fake: FakeHubSpot, url: str) -> None:
    outputs = MemoryOutputs()
    conn = connector(url, outputs=outputs)
    conn.open()
    assert conn.write("customers", [customer("1", "Initech")]) == []
    fake.by_key("companies", "invoiced_customer_id")["1"]["archived"] = True  # a user deleted it

    # A later run (fresh cache, same store) sees an invoice change first.
    conn = connector(url, outputs=outputs)
    conn.open()
    [refused] = conn.write("invoices", [invoice("10", "1")])
    assert "deleted in HubSpot" in refused.reason and isinstance(refused, PartialRejection)
    assert fake.by_key("companies", "invoiced_customer_id") == {}  # no stub
    # The customer's next change brings the company back whole.
    assert conn.write("customers", [customer("1", "Initech")]) == []
    assert fake.by_key("companies", "invoiced_customer_id")["1"]["properties"]["name"] == "Initech"
    # A customer syncd never wrote still gets its stub (a deal may come before its customer).
    assert conn.write("invoices", [invoice("11", "2")]) == []
    assert "2" in fake.by_key("companies", "invoiced_customer_id")


def test_deleted_customer_is_forgotten(fake: FakeHubSpot, url: str) -> None:
    outputs = MemoryOutputs()
    conn = connector(url, outputs=outputs, archive_deleted_companies=True)
    conn.open()
    assert conn.write("customers", [customer("1")]) == []
    assert list(outputs.rows("companies")) == [{"id": "1"}]
    assert conn.write("customers", [deleted("customers", "1")]) == []
    assert list(outputs.rows("companies")) == []


FILL = {"companies": ["phone", "city"], "contacts": ["lastname", "phone"]}


def test_fill_only_properties_keep_what_sales_typed_in_hubspot(fake: FakeHubSpot, url: str) -> None:
    conn = connector(url, fill_only=FILL)
    conn.open()
    assert conn.write("customers", [customer("1", "Acme")]) == []
    company = fake.by_key("companies", "invoiced_customer_id")["1"]
    assert "phone" not in company["properties"]  # empty in Invoiced: not sent as ""
    company["properties"]["phone"] = "+1 555 0100"  # typed by a sales person

    # An unrelated Invoiced edit: phone and city still empty there, or set there.
    renamed = customer("1", "Acme Corp")
    renamed.tables["companies"][0].update(phone=None, city="Austin")
    assert conn.write("customers", [renamed]) == []
    props = company["properties"]
    assert props["phone"] == "+1 555 0100" and props["city"] == "Austin" and props["name"] == "Acme Corp"
    # Filled once, a fill-only property is HubSpot's: a new Invoiced value does not overwrite it.
    moved = customer("1", "Acme Corp")
    moved.tables["companies"][0].update(phone="+1 555 9999", city="Dallas")
    assert conn.write("customers", [moved]) == []
    assert props["phone"] == "+1 555 0100" and props["city"] == "Austin"


def test_taken_over_contact_keeps_its_name(fake: FakeHubSpot, url: str) -> None:
    holder = fake.add_object(
        "contacts", {"email": "billing@acme.test", "firstname": "Jane", "lastname": "Doe"}
    )
    conn = connector(url, fill_only=FILL)
    conn.open()
    record = customer("1")
    record.tables["contacts"][0]["lastname"] = "Accounts Payable, Jane Doe"  # attention_to
    assert conn.write("customers", [record]) == []
    contact = fake.objects["contacts"][holder]["properties"]
    assert contact["invoiced_customer_id"] == "1" and contact["lastname"] == "Doe"


def test_shipped_mapping_declares_contact_details_fill_only() -> None:
    fill = load_mapping(MAPPING).fill_only()
    assert set(fill) == {"companies", "contacts"}
    assert "phone" in fill["companies"] and "name" not in fill["companies"]
    assert set(fill["contacts"]) == {"lastname", "phone"}


def test_unknown_write_mode_is_a_mapping_error_naming_the_key(tmp_path: Path) -> None:
    from syncd.errors import MappingError

    bad = tmp_path / "m.toml"
    bad.write_text(
        '[tables.companies]\nstream = "customers"\n\n[[tables.companies.fields]]\n'
        'name = "phone"\nfrom = "phone"\nwrite = "sometimes"\n'
    )
    with pytest.raises(MappingError, match="write must be one of 'always', 'if_empty'") as info:
        load_mapping(bad)
    assert "m.toml:7" in str(info.value)


def test_batches_are_paced_by_the_rate_limit_headers(fake: FakeHubSpot) -> None:
    sleeps: list[float] = []
    with serve(fake) as base:
        conn = connector(base, sleeps, batch_size=2)
        fake.clock = conn.client.policy.clock  # one clock, moved only by the client's waits
        fake.window_max = 4  # requests per rolling 10-second window
        conn.open()
        records = [customer(str(i), f"Company {i}", email=None) for i in range(1, 21)]
        assert conn.write("customers", records) == []
    assert len(fake.by_key("companies", "invoiced_customer_id")) == 20
    assert fake.limited == 0  # X-HubSpot-RateLimit-Remaining said when to wait: never a 429
    # 3 property reads + 10 upserts in windows of 4: three waits, each until our oldest
    # request of the window leaves it
    assert sleeps == [10.0, 10.0, 10.0]


def test_whole_batch_refusal_costs_a_bounded_number_of_requests(fake: FakeHubSpot, url: str) -> None:
    from connectors.hubspot.client import SPLIT_REQUESTS

    fake.reject_whole_batch = True
    fake.reject = lambda t, p: (
        "deal_currency_code: XTS is not a currency of the account" if t == "deals" else None
    )
    conn = connector(url)
    conn.open()
    assert conn.write("customers", [customer("1")]) == []
    before = len(fake.calls("POST", r"/crm/v3/objects/deals/batch/upsert"))
    rejected = conn.write("invoices", [invoice(str(i), "1") for i in range(100, 200)])
    sent = len(fake.calls("POST", r"/crm/v3/objects/deals/batch/upsert")) - before
    assert sent <= 1 + SPLIT_REQUESTS  # halving every input apart would take 199
    assert len(rejected) == 100 and all("not a currency of the account" in r.reason for r in rejected)


def test_whole_batch_refusal_naming_its_input_resends_the_rest_once(fake: FakeHubSpot, url: str) -> None:
    fake.reject_whole_batch = fake.name_refused_input = True
    fake.reject = lambda t, p: "bad amount" if t == "deals" and p.get("amount") == "-5.00" else None
    conn = connector(url)
    conn.open()
    assert conn.write("customers", [customer("1")]) == []
    rejected = conn.write(
        "invoices", [invoice(str(i), "1", "-5.00" if i == 13 else "1.00") for i in range(10, 40)]
    )
    assert [r.record_id for r in rejected] == ["13"]
    assert len(fake.calls("POST", r"/crm/v3/objects/deals/batch/upsert")) == 2


def test_deal_in_a_currency_the_account_lacks_is_refused_up_front(fake: FakeHubSpot, url: str) -> None:
    fake.currencies = ("USD", "EUR")
    conn = connector(url)
    conn.open()
    assert conn.write("customers", [customer("1")]) == []
    kwd = invoice("11", "1")
    kwd.tables["deals"][0]["deal_currency_code"] = "KWD"
    rejected = conn.write("invoices", [invoice("10", "1"), kwd, invoice("12", "1")])
    assert [r.record_id for r in rejected] == ["11"]
    assert "deal currency KWD is not a currency of the HubSpot account (EUR, USD)" in rejected[0].reason
    [sent] = fake.calls("POST", r"/crm/v3/objects/deals/batch/upsert")
    assert [i["id"] for i in sent["inputs"]] == ["10", "12"]  # never sent: no whole-batch refusal
    # read once per run, before the first deal
    conn.write("invoices", [invoice("13", "1")])
    assert len(fake.calls("GET", r"/account-info/v3/details")) == 1


def test_write_applied_with_its_reply_lost_is_retried_without_a_twin(fake: FakeHubSpot, url: str) -> None:
    sleeps: list[float] = []
    conn = connector(url, sleeps)
    conn.open()
    fake.lose_replies = 2  # the companies upsert and then the contacts upsert: applied, no reply
    assert conn.write("customers", [customer("1"), customer("2", email="ap@two.test")]) == []
    assert fake.lose_replies == 0 and len(sleeps) == 2  # each resent once
    assert len(fake.live("companies")) == 2 and len(fake.live("contacts")) == 2
    assert set(fake.by_key("companies", "invoiced_customer_id")) == {"1", "2"}
