"""Contract tests: hand-written vcrpy cassettes following HubSpot's documented requests and responses.

Each cassette lists, in order, every request the connector must send (method, URL and JSON
body are matched) and HubSpot's answer; a request not in the cassette fails the test, and
`all_played` proves none was left out.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import vcr

from syncd.errors import ConfigError
from tests.hubspot.helpers import connector, customer, deleted, invoice

CASSETTES = Path(__file__).parent / "cassettes"
URL = "http://127.0.0.1:9"  # nothing listens: with record_mode "none" every answer comes from the cassette


def _json_body(r1: Any, r2: Any) -> None:
    def parsed(body: Any) -> Any:
        if not body:
            return None
        return json.loads(body.decode() if isinstance(body, bytes) else body)

    assert parsed(r1.body) == parsed(r2.body), f"{parsed(r1.body)} != {parsed(r2.body)}"


def _vcr() -> vcr.VCR:
    recorder = vcr.VCR(
        cassette_library_dir=str(CASSETTES),
        record_mode="none",
        filter_headers=["authorization"],
        match_on=["method", "scheme", "host", "port", "path", "query", "json_body"],
    )
    recorder.register_matcher("json_body", _json_body)
    return recorder


@contextmanager
def play(name: str) -> Iterator[Any]:
    """Replay a cassette; fail unless every recorded request was sent."""
    with _vcr().use_cassette(name) as cas:
        yield cas
        assert cas.all_played, f"requests not sent: {len(cas.data) - cas.play_count} of {len(cas.data)}"


def test_open_creates_the_missing_unique_properties() -> None:
    with play("properties_create.yaml"):
        connector(URL, create_properties=True).open()


def test_open_names_the_missing_property_and_writes_nothing() -> None:
    with _vcr().use_cassette("properties_missing.yaml") as cas:
        with pytest.raises(ConfigError) as info:
            connector(URL).open()
        assert cas.all_played
    assert "contacts property 'invoiced_customer_id' does not exist" in str(info.value)
    assert "create_properties" in str(info.value)


def test_rate_limited_batch_is_retried_when_the_rolling_window_frees() -> None:
    with play("customers_429.yaml"):
        sleeps: list[float] = []
        conn = connector(URL, sleeps)
        conn.open()
        rejected = conn.write(
            "customers", [customer("1", "Acme"), customer("2", "Globex", email="ap@globex.test")]
        )
        conn.flush()
        assert rejected == []
        # the policy names a 10-second rolling window opened by our first request (time 0)
        assert sleeps == [10.0]


def test_one_failing_input_is_rejected_with_hubspots_message() -> None:
    with play("deals_207.yaml"):
        conn = connector(URL)
        conn.open()
        rejected = conn.write("invoices", [invoice("10", "1"), invoice("11", "2", "-5.00")])
        assert [(r.stream, r.record_id) for r in rejected] == [("invoices", "11")]
        assert "-5.00 is not a valid amount: it must not be negative" in rejected[0].reason
        assert rejected[0].reason.startswith("HubSpot deals 11: VALIDATION_ERROR")


def test_rerun_sends_the_same_keyed_upserts_and_creates_nothing_new() -> None:
    with play("rerun.yaml") as cassette:
        for _ in range(2):  # two runs: two connector instances, nothing cached between them
            conn = connector(URL)
            conn.open()
            assert (
                conn.write(
                    "customers", [customer("1", "Acme"), customer("2", "Globex", email="ap@globex.test")]
                )
                == []
            )
            conn.close()
        upserts = [r for r in cassette.requests if r.path.endswith("/batch/upsert")]
        assert len(upserts) == 4
        assert not [r for r in cassette.requests if r.path.endswith("/batch/create")]


def test_deleted_and_voided_invoices_archive_their_deals() -> None:
    with play("archive.yaml"):
        conn = connector(URL)
        conn.open()
        assert conn.write("invoices", [deleted("invoices", "10"), invoice("11", "1", status="voided")]) == []
