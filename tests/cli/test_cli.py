"""The command line: one-line errors naming file and key, status without secrets."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from syncd.cli import app
from syncd.store import Store

runner = CliRunner()


def test_sync_with_bad_config_fails_before_any_request_naming_file_and_key(tmp_path: Path) -> None:
    config = tmp_path / "syncd.toml"
    config.write_text('[invoiced]\nbase_url = "http://127.0.0.1:9"\napi_key = "sk_cli_secret_123"\nper_page = 0\n')
    result = runner.invoke(app, ["--config", str(config), "sync"])
    assert result.exit_code == 2
    assert "syncd.toml: invoiced.per_page" in result.output
    assert "sk_cli_secret_123" not in result.output


def test_unknown_connector_lists_installed_ones(tmp_path: Path) -> None:
    config = tmp_path / "syncd.toml"
    config.write_text(f'[store]\nurl = "sqlite:///{tmp_path / "s.db"}"\n[connectors.exel]\nenabled = true\n')
    result = runner.invoke(app, ["--config", str(config), "mappings", "check"])
    assert result.exit_code == 2
    assert "unknown connector 'exel'; installed: " in result.output
    assert "csv" in result.output


def test_status_shows_cursors_runs_and_error_counts_but_never_the_key(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    config = tmp_path / "syncd.toml"
    config.write_text(
        f'[invoiced]\napi_key = "sk_status_secret_999"\nbase_url = "http://127.0.0.1:9"\n[store]\nurl = "sqlite:///{db}"\n'
    )
    store = Store.open(f"sqlite:///{db}")
    store.set_cursor("invoices", "", 1_700_000_000)
    run = store.start_run("sync")
    store.finish_run(run, "ok", {"streams": {"invoices": {"fetched": 12, "changed": 3}}})
    store.commit_deliveries("csv", "invoices", [], [("42", "bad amount")])
    store.close()
    result = runner.invoke(app, ["--config", str(config), "status"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "2023-11-14 22:13:20 UTC" in result.output
    assert "invoices: 12 fetched/3 changed" in result.output
    assert "errors (refused records and payments): 1" in result.output
    assert "csv/invoices" in result.output and "syncd errors" in result.output
    assert "sk_status_secret_999" not in result.output


def test_sync_unknown_stream(tmp_path: Path) -> None:
    config = tmp_path / "syncd.toml"
    config.write_text(
        f'[invoiced]\nbase_url = "http://127.0.0.1:9"\napi_key = "k_test"\n[store]\nurl = "sqlite:///{tmp_path / "s.db"}"\n'
    )
    result = runner.invoke(app, ["--config", str(config), "sync", "--stream", "orders"])
    assert result.exit_code == 2
    assert "unknown stream 'orders'" in result.output


def test_version_prints_the_installed_version_and_needs_no_config(tmp_path: Path, monkeypatch) -> None:
    from importlib.metadata import version

    monkeypatch.chdir(tmp_path)  # no syncd.toml here: --version reads none
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"syncd {version('syncd')}"
