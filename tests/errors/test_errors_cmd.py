"""`syncd errors`: list, show, retry and ignore refused records and payments, end to end."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from syncd.cli import app
from syncd.plugin import ExternalPayment
from syncd.pushback.outbox import OUTBOX, Outbox, ignore_payment, retry_payment
from syncd.reconcile import open_count
from syncd.store import Store

runner = CliRunner()
WIDE = {"COLUMNS": "250"}

MAPPING = """
[tables.customers]
stream = "customers"

[[tables.customers.fields]]
name = "id"
from = "id"

[[tables.customers.fields]]
name = "name"
from = "name"

[tables.invoices]
stream = "invoices"

[[tables.invoices.fields]]
name = "id"
from = "id"

[[tables.invoices.fields]]
name = "number"
from = "number"
"""

# A column whose value table knows only `paid`: every other invoice is refused.
STAGE = """
[[tables.invoices.fields]]
name = "stage"
from = "status"
transforms = [{{ map = {{ paid = "won" }}{fallback} }}]
"""


def _setup(tmp_path: Path, sandbox: Any, stage_fallback: str | None) -> Path:
    mapping = tmp_path / "csv.toml"
    _write_mapping(mapping, stage_fallback)
    config = tmp_path / "syncd.toml"
    config.write_text(
        f'[invoiced]\nbase_url = "{sandbox.url}"\napi_key = "{sandbox.api_key}"\n'
        f'[store]\nurl = "sqlite:///{tmp_path / "s.db"}"\n'
        f'[connectors.csv]\nenabled = true\ndirectory = "{tmp_path / "out"}"\nmapping = "{mapping}"\n',
        encoding="utf-8",
    )
    return config


def _write_mapping(path: Path, stage_fallback: str | None, stage: bool = True) -> None:
    fallback = "" if stage_fallback is None else f', fallback = "{stage_fallback}"'
    path.write_text(MAPPING + (STAGE.format(fallback=fallback) if stage else ""), encoding="utf-8")


def _cli(config: Path, *args: str) -> Any:
    return runner.invoke(app, ["--config", str(config), *args], env=WIDE)


def _errors(config: Path, *args: str) -> dict[str, Any]:
    result = _cli(config, "errors", *args, "--json")
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def test_refused_records_are_listed_shown_and_retried_after_a_mapping_fix_without_any_request(
    make_sandbox: Any, tmp_path: Path
) -> None:
    sandbox = make_sandbox(customers=6, invoices=40, transactions=25)
    config = _setup(tmp_path, sandbox, None)
    assert _cli(config, "sync").exit_code == 0
    unpaid = {str(i["id"]) for i in sandbox.data.list("invoices") if i["status"] != "paid"}
    assert unpaid, "the seed has unpaid invoices"

    listed = _errors(config)
    assert listed["total"] == len(unpaid)
    assert {e["record"] for e in listed["errors"]} == unpaid
    assert listed["counts"]["connector/stream"] == {"csv/invoices": len(unpaid)}
    assert len(listed["counts"]["reason"]) == 1, listed["counts"]["reason"]
    (kind,) = listed["counts"]["reason"]  # one reason, whatever the status and id
    assert "is not in the inline value table" in kind
    assert all(e["id"].startswith("d") and len(e["id"]) == 9 for e in listed["errors"])
    assert all(e["state"] == "nothing" for e in listed["errors"])  # never delivered: no row kept
    # The refused invoices are exactly the ones missing from the file.
    rows = _csv(tmp_path / "out" / "invoices.csv")
    assert {r["id"] for r in rows} == {str(i["id"]) for i in sandbox.data.list("invoices")} - unpaid

    first = listed["errors"][0]
    shown = _cli(config, "errors", "show", first["id"][:5], "--json")
    assert shown.exit_code == 0, shown.output
    (detail,) = json.loads(shown.stdout)
    assert detail["record"] == first["record"] and detail["source"]["id"] == int(first["record"])
    table = _cli(config, "errors")
    assert table.exit_code == 0
    assert "csv/invoices" in table.stdout and first["id"] in table.stdout

    # The filters.
    assert _errors(config, "--connector", "hubspot")["total"] == 0
    assert _errors(config, "--stream", "customers")["total"] == 0
    assert _errors(config, "--reason", "inline value table")["total"] == len(unpaid)
    assert _errors(config, "--reason", "no such words")["total"] == 0
    assert _errors(config, "--since", "1h")["total"] == len(unpaid)
    assert _errors(config, "--since", "2999-01-01")["total"] == 0

    # Fix the mapping, then retry from the store: not one request to Invoiced.
    _write_mapping(tmp_path / "csv.toml", "open")
    sandbox.stats.reset()
    retried = _cli(config, "errors", "retry", "--all", "--json")
    assert retried.exit_code == 0, retried.output
    assert sandbox.stats.total == 0
    assert json.loads(retried.stdout)["still_refused"] == []
    assert _errors(config)["total"] == 0
    rows = _csv(tmp_path / "out" / "invoices.csv")
    assert len(rows) == len(sandbox.data.list("invoices"))
    assert {r["stage"] for r in rows if r["id"] in unpaid} == {"open"}


def test_retry_by_id_touches_only_that_record_and_a_still_refused_one_stays_listed(
    make_sandbox: Any, tmp_path: Path
) -> None:
    sandbox = make_sandbox(customers=4, invoices=20, transactions=15)
    config = _setup(tmp_path, sandbox, None)
    assert _cli(config, "sync").exit_code == 0
    before = _errors(config)["errors"]
    assert len(before) >= 2
    sandbox.stats.reset()
    again = _cli(config, "errors", "retry", before[0]["id"])  # the mapping still refuses it
    assert again.exit_code == 1
    assert "still refused: " + before[0]["id"] in again.stdout
    assert sandbox.stats.total == 0
    after = {e["id"]: e for e in _errors(config)["errors"]}
    assert set(after) == {e["id"] for e in before}
    assert after[before[0]["id"]]["attempts"] == 2
    assert {e["attempts"] for i, e in after.items() if i != before[0]["id"]} == {1}
    nothing = _cli(config, "errors", "retry")
    assert nothing.exit_code == 2 and "say which errors" in nothing.output
    unknown = _cli(config, "errors", "show", "dzzzzzzzz")
    assert unknown.exit_code == 2 and "no error with id 'dzzzzzzzz'" in unknown.output


def test_ignored_errors_leave_the_counts_until_the_record_changes(make_sandbox: Any, tmp_path: Path) -> None:
    sandbox = make_sandbox(customers=4, invoices=30, transactions=20)
    config = _setup(tmp_path, sandbox, None)
    assert _cli(config, "sync").exit_code == 0
    errors = _errors(config)["errors"]
    chosen, kept = errors[0], errors[1:]
    done = _cli(config, "errors", "ignore", chosen["id"], "--json")
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout) == {"ignored": [chosen["id"]]}
    assert {e["id"] for e in _errors(config)["errors"]} == {e["id"] for e in kept}
    assert chosen["id"] in {e["id"] for e in _errors(config, "--ignored")["errors"]}
    store = Store.open(f"sqlite:///{tmp_path / 's.db'}")
    try:
        assert open_count(store) == len(kept)
    finally:
        store.close()
    status = _cli(config, "status")
    assert f"errors (refused records and payments): {len(kept)}" in status.stdout
    assert "syncd errors" in status.stdout
    # A plain re-sync that does not touch the record keeps it ignored...
    assert _cli(config, "sync").exit_code == 0
    assert chosen["id"] not in {e["id"] for e in _errors(config)["errors"]}
    # ...a change to the record (still refused) brings it back. (The only invoice of this run,
    # refused: the sync says so with exit 1.)
    sandbox.data.update("invoices", int(chosen["record"]), {"notes": "changed"})
    assert _cli(config, "sync").exit_code == 1
    assert chosen["id"] in {e["id"] for e in _errors(config)["errors"]}


def _payment(ext: str) -> ExternalPayment:
    import datetime as dt
    from decimal import Decimal

    return ExternalPayment(
        external_id=ext,
        source="csv",
        invoice="INV-1",
        amount=Decimal("10.00"),
        currency="usd",
        date=dt.date(2024, 3, 1),
        origin="inbox.csv:2",
    )


def test_refused_and_held_payments_are_listed_retried_and_dismissed(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    config = tmp_path / "syncd.toml"
    config.write_text(f'[invoiced]\nbase_url = "http://127.0.0.1:9"\n[store]\nurl = "sqlite:///{db}"\n')
    store = Store.open(f"sqlite:///{db}")
    outbox = Outbox(store.engine)
    for ext in ("pay-rejected", "pay-held", "pay-other-held"):
        outbox.register(_payment(ext))
    outbox.mark_rejected("pay-rejected", "amount 10.00 is above the open balance 5.00")
    with store.engine.begin() as conn:
        for ext in ("pay-held", "pay-other-held"):
            conn.execute(
                OUTBOX.update()
                .where(OUTBOX.c.external_id == ext)
                .values(state="held", reason="possible duplicate: transaction 77 has the same amount")
            )
    store.close()

    listed = _errors(config, "--stream", "payments")
    by_record = {e["record"]: e for e in listed["errors"]}
    assert set(by_record) == {"pay-rejected", "pay-held", "pay-other-held"}
    assert by_record["pay-rejected"]["state"] == "rejected" and by_record["pay-held"]["state"] == "held"
    assert all(e["id"].startswith("p") for e in listed["errors"])
    assert listed["counts"]["connector/stream"] == {"csv/payments": 3}

    retried = _cli(
        config, "errors", "retry", by_record["pay-rejected"]["id"], by_record["pay-held"]["id"], "--json"
    )
    assert retried.exit_code == 0, retried.output
    assert json.loads(retried.stdout)["payments"] == {"pay-rejected": "pending", "pay-held": "confirmed"}
    assert _cli(config, "errors", "ignore", by_record["pay-other-held"]["id"]).exit_code == 0
    assert _errors(config)["total"] == 0
    assert [e["state"] for e in _errors(config, "--ignored")["errors"]] == ["dismissed"]
    store = Store.open(f"sqlite:///{db}")
    try:
        states = {e: Outbox(store.engine).get(e).state for e in by_record}  # type: ignore[union-attr]
        assert states == {"pay-rejected": "pending", "pay-held": "confirmed", "pay-other-held": "dismissed"}
        # The transitions only apply from the states they name.
        assert retry_payment(store, "pay-held") is None and ignore_payment(store, "pay-rejected") is None
    finally:
        store.close()


def test_healthz_warns_of_errors_that_are_not_ignored(tmp_path: Path) -> None:
    from syncd.config import Settings
    from syncd.daemon.service import Daemon, Job
    from syncd.reconcile import find, ignore, list_refusals

    store = Store.open(f"sqlite:///{tmp_path / 's.db'}")
    try:
        store.commit_deliveries("csv", "invoices", [], [("41", "bad amount"), ("42", "bad amount")])
        d = Daemon(Settings(daemon={"stale_cursor_after": 600}))
        d.store = store
        d._refresh_store_facts(Job("invoices", "pull", 60, "invoices"))
        assert d.health() == (True, [], ["2 refused record(s) or payment(s): see `syncd errors`"])
        assert d.metrics.get("syncd_errors") == 2
        ignore(store, find(store, [r.id for r in list_refusals(store)]))
        d._refresh_store_facts(Job("invoices", "pull", 60, "invoices"))
        assert d.health() == (True, [], [])
    finally:
        store.close()


def test_listing_ignoring_and_payment_moves_on_both_stores(store_url: str) -> None:
    from syncd.plugin import Record
    from syncd.reconcile import find, ignore, list_refusals, summarise
    from syncd.store import content_hash

    store = Store.open(store_url)
    try:
        data = {"id": 7, "updated_at": 1, "status": "sent"}
        store.save_raw([(Record("invoices", "7", 1, data), content_hash(data))])
        store.commit_deliveries("csv", "invoices", [], [("7", "invoices 7: bad"), ("8", "invoices 8: bad")])
        Outbox(store.engine).register(_payment("pay-1"))
        Outbox(store.engine).mark_rejected("pay-1", "no such invoice")
        every = list_refusals(store)
        assert summarise(every)["connector/stream"] == {"csv/invoices": 2, "csv/payments": 1}
        assert summarise(every)["reason"] == {"invoices ID: bad": 2, "no such invoice": 1}
        record = next(r for r in every if r.record == "7")
        assert find(store, [record.id[:6]]) == [record] == find(store, ["csv/invoices/7"])
        ignore(store, [record, *find(store, ["payment/pay-1"])])
        assert [r.record for r in list_refusals(store)] == ["8"]
        assert open_count(store) == 1
        changed = {**data, "status": "paid"}
        store.save_raw([(Record("invoices", "7", 2, changed), content_hash(changed))])
        assert {r.record for r in list_refusals(store)} == {"7", "8"}  # it changed: counted again
    finally:
        store.close()


def test_retry_refuses_while_another_process_holds_the_pull_lease(make_sandbox: Any, tmp_path: Path) -> None:
    """Re-delivery rewrites connector files: never beside a running sync or daemon pull."""
    from syncd.store.lease import PULL, Lease

    sandbox = make_sandbox(customers=4, invoices=20, transactions=15)
    config = _setup(tmp_path, sandbox, None)
    assert _cli(config, "sync").exit_code == 0
    first = _errors(config)["errors"][0]["id"]
    store = Store.open(f"sqlite:///{tmp_path / 's.db'}")
    try:
        lease = Lease(store.engine, ttl=60, name=PULL, role="syncd sync")  # a live holder: this process
        lease.acquire()
        refused = _cli(config, "errors", "retry", first)
        assert refused.exit_code == 4, refused.output
        assert "pull lease is held by syncd sync" in " ".join(refused.output.split())
        lease.release()
        assert _cli(config, "errors", "retry", first).exit_code == 1  # runs now; the mapping still refuses it
    finally:
        store.close()
