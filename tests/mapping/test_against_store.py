"""`syncd mappings check --against-store`: how many stored records a valid mapping would refuse."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from syncd.cli import app
from tests.mapping.test_cli import _config, _mapping, _store

runner = CliRunner()

STAGE = """
[tables.stages]
stream = "invoices"

[[tables.stages.fields]]
name = "stage"
from = "status"
transforms = [{ map = { paid = "won", sent = "open" } }]
"""


def _invoice(i: int, status: str) -> tuple[str, dict[str, object]]:
    return ("invoices", {"id": i, "updated_at": 1_700_000_000 + i, "status": status, "number": f"INV-{i}"})


def test_counts_the_stored_records_the_mapping_would_refuse_with_the_first_reasons(tmp_path: Path) -> None:
    config = _config(tmp_path, _mapping(tmp_path, STAGE))
    statuses = ["paid", "sent", "voided", "draft", "paid", "past_due", "voided", "voided", "voided", "voided"]
    _store(tmp_path, [_invoice(i, s) for i, s in enumerate(statuses, 1)])
    result = runner.invoke(app, ["--config", str(config), "mappings", "check"], env={"COLUMNS": "250"})
    assert result.exit_code == 1, result.output  # the store exists: checked by default
    assert "invoices: 7 of 10 stored record(s) would be refused, first reasons:" in result.output
    reasons = [line for line in result.output.splitlines() if line.startswith("  ")]
    assert len(reasons) == 5 and '"voided" is not in the inline value table' in reasons[0]
    assert "customers: none of 0 stored record(s)" in result.output
    skipped = runner.invoke(app, ["--config", str(config), "mappings", "check", "--no-against-store"])
    assert skipped.exit_code == 0, skipped.output


def test_without_a_store_only_the_files_are_checked(tmp_path: Path) -> None:
    config = _config(tmp_path, _mapping(tmp_path, STAGE))
    result = runner.invoke(app, ["--config", str(config), "mappings", "check"])
    assert result.exit_code == 0, result.output
    assert "stored record" not in result.output
    assert not (tmp_path / "s.db").exists()


def test_the_connector_own_check_counts_too_ledger(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    config = tmp_path / "syncd.toml"
    config.write_text(
        f'[store]\nurl = "sqlite:///{tmp_path / "s.db"}"\n[connectors.csv]\nenabled = false\n'
        f'[connectors.ledger]\nenabled = true\nmapping = "{root / "mappings" / "ledger.toml"}"\n',
        encoding="utf-8",
    )

    def txn(i: int, kind: str) -> tuple[str, dict[str, object]]:
        data = {
            "id": i,
            "updated_at": 1_700_000_000,
            "date": 1_700_000_000,
            "type": kind,
            "status": "succeeded",
        }
        return ("transactions", {**data, "method": "check", "currency": "usd", "amount": "10.00"})

    _store(tmp_path, [txn(1, "payment"), txn(2, "payout"), txn(3, "refund")])
    result = runner.invoke(app, ["--config", str(config), "mappings", "check"], env={"COLUMNS": "250"})
    assert result.exit_code == 1, result.output
    assert "transactions: 1 of 3 stored record(s) would be refused" in result.output
    assert "transactions 2: transactions.type: 'payout' is not one of" in result.output
