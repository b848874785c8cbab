"""A refused record keeps its last good state; a mapping change that adds a column says which
rows still have the old shape; a sync in which a connector refuses a whole stream fails."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from structlog.testing import capture_logs

from syncd.config import load_settings
from syncd.engine import run_sync
from tests.errors.test_errors_cmd import _cli, _csv, _errors, _setup, _write_mapping


def test_a_column_added_by_a_mapping_change_and_refused_keeps_the_old_rows_and_says_so(
    make_sandbox: Any, tmp_path: Path
) -> None:
    sandbox = make_sandbox(customers=5, invoices=30, transactions=20)
    config = _setup(tmp_path, sandbox, None)
    _write_mapping(tmp_path / "csv.toml", None, stage=False)
    assert _cli(config, "sync").exit_code == 0
    old = {r["id"]: r for r in _csv(tmp_path / "out" / "invoices.csv")}
    assert len(old) == 30 and "stage" not in next(iter(old.values()))
    unpaid = {str(i["id"]) for i in sandbox.data.list("invoices") if i["status"] != "paid"}
    assert 0 < len(unpaid) < 30

    _write_mapping(tmp_path / "csv.toml", None)  # adds `stage`, refused for every unpaid invoice
    with capture_logs() as logs:
        report = run_sync(load_settings(config))
    assert report.ok and not report.refused_all()  # the paid ones went through
    assert report.as_dict()["redelivery"]["invoices"]["behind"] == {"csv": len(unpaid)}
    (warning,) = [e for e in logs if e["event"] == "mapping.rows_behind"]
    assert warning["records"] == len(unpaid) and warning["stream"] == "invoices"
    assert "syncd errors --connector csv --stream invoices" in warning["message"]

    rows = {r["id"]: r for r in _csv(tmp_path / "out" / "invoices.csv")}
    assert set(rows) == set(old)  # nothing lost: refused invoices keep their last good row
    for rid in unpaid:
        assert rows[rid]["number"] == old[rid]["number"] and rows[rid]["stage"] == ""
    assert {rows[rid]["stage"] for rid in set(rows) - unpaid} == {"won"}
    listed = _errors(config)["errors"]
    assert {e["record"] for e in listed} == unpaid
    assert {e["state"] for e in listed} == {"earlier mapping"}


def test_a_sync_in_which_a_connector_refuses_every_record_of_a_stream_fails(
    make_sandbox: Any, tmp_path: Path
) -> None:
    sandbox = make_sandbox(customers=3, invoices=12, transactions=0)
    config = _setup(tmp_path, sandbox, None)
    (tmp_path / "csv.toml").write_text(
        (tmp_path / "csv.toml").read_text().replace("paid = ", "nothing_is = "), encoding="utf-8"
    )
    result = _cli(config, "sync")
    assert result.exit_code == 1
    assert "invoices: csv refused all 12 record(s)" in result.output
    # The same after a mapping change that makes every stored record fail: no new record needed.
    _write_mapping(tmp_path / "csv.toml", "x")
    assert _cli(config, "sync").exit_code == 0
    _write_mapping(tmp_path / "csv.toml", None)
    (tmp_path / "csv.toml").write_text(
        (tmp_path / "csv.toml").read_text().replace("paid = ", "nothing_is = "), encoding="utf-8"
    )
    sandbox.stats.reset()
    result = _cli(config, "sync")
    assert result.exit_code == 1, result.output
    assert "invoices: csv refused all 12 record(s)" in result.output
    assert json.loads(_cli(config, "errors", "--json").stdout)["total"] == 12
