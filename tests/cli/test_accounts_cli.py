"""Several accounts on the command line: `--account NAME`, or every account in turn (sync,
push, status grouped by account); commands that need one account say so on one line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from syncd.cli import app
from syncd.store import Store
from tests.engine.helpers import CSV_MAPPING, assert_csv_matches

runner = CliRunner()


def write_config(tmp_path: Path, acme: Any, beta: Any, *, beta_key: str = "BETA_KEY") -> Path:
    config = tmp_path / "syncd.toml"
    config.write_text(
        'log_level = "warning"\n'
        f'[invoiced]\nper_page = 10\napi_key = "sk_top_level_never_used"\nbase_url = "{acme.url}"\n'
        f'[connectors.csv]\nenabled = true\ndirectory = "out"\nmapping = "{CSV_MAPPING}"\n'
        '[accounts.acme.invoiced]\napi_key_env = "ACME_KEY"\n'
        f'[accounts.beta.invoiced]\napi_key_env = "{beta_key}"\nbase_url = "{beta.url}"\n'
    )
    return config


@pytest.fixture
def two(make_sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Any, Any]:
    """A config of two accounts, each on its own sandbox (its own key and data)."""
    acme = make_sandbox(invoices=60, customers=10, transactions=25, seed=1, api_key="sk_acme_cli_1")
    beta = make_sandbox(invoices=30, customers=6, transactions=12, seed=2, api_key="sk_beta_cli_2")
    monkeypatch.setenv("ACME_KEY", acme.api_key)
    monkeypatch.setenv("BETA_KEY", beta.api_key)
    return write_config(tmp_path, acme, beta), acme, beta


def run(config: Path, *args: str) -> Any:
    return runner.invoke(app, ["--config", str(config), *args], env={"COLUMNS": "200"})


def test_sync_runs_every_account_into_its_own_store_and_outputs(two: tuple[Path, Any, Any], tmp_path: Path) -> None:
    config, acme, beta = two
    result = run(config, "sync")
    assert result.exit_code == 0, result.output
    assert result.stdout.index("account acme") < result.stdout.index("account beta")
    acme_part, beta_part = result.stdout.split("account beta")
    assert "60 invoices written" in acme_part and "30 invoices written" in beta_part
    assert_csv_matches(acme, tmp_path / "accounts" / "acme" / "out")
    assert_csv_matches(beta, tmp_path / "accounts" / "beta" / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "syncd.db").exists()
    for name in ("sk_acme_cli_1", "sk_beta_cli_2", "sk_top_level_never_used"):
        assert name not in result.output

    # status: every account under its name, each with its own runs
    result = run(config, "status")
    assert result.exit_code == 0, result.output
    acme_part, beta_part = result.stdout.split("account beta")
    assert acme_part.lstrip().startswith("account acme")
    assert "customers: 10 fetched/10 changed" in acme_part and "/60 changed" in acme_part
    assert "customers: 6 fetched/6 changed, invoices: 30 fetched/30 changed" in beta_part
    assert "/60 changed" not in beta_part and "/30 changed" not in acme_part
    assert "syncd_acme" not in result.stdout  # SQLite: each in its own folder
    assert str(tmp_path / "accounts" / "beta" / "syncd.db") in beta_part

    # --account: that account only, shown as a single-account config is
    result = run(config, "status", "--account", "beta")
    assert result.exit_code == 0, result.output
    assert "account " not in result.stdout and "invoices: 30 fetched" in result.stdout
    assert "/60 changed" not in result.stdout


def test_sync_of_one_account_leaves_the_others_alone(two: tuple[Path, Any, Any], tmp_path: Path) -> None:
    config, _, beta = two
    result = run(config, "sync", "--account", "beta")
    assert result.exit_code == 0, result.output
    assert "account " not in result.stdout and "30 invoices written" in result.stdout
    assert_csv_matches(beta, tmp_path / "accounts" / "beta" / "out")
    assert not (tmp_path / "accounts" / "acme" / "out").exists()


def test_a_failing_account_does_not_stop_the_others_but_fails_the_command(
    make_sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    acme = make_sandbox(seed=1, api_key="sk_acme_cli_1")
    beta = make_sandbox(seed=2, api_key="sk_beta_cli_2")
    monkeypatch.setenv("ACME_KEY", acme.api_key)
    monkeypatch.setenv("WRONG_KEY", "sk_wrong_cli_3")
    config = write_config(tmp_path, acme, beta, beta_key="WRONG_KEY")
    result = run(config, "sync")
    assert result.exit_code != 0
    assert "sync failed (account beta): " in result.stderr and "invalid API key" in result.stderr
    assert result.stderr.rstrip().endswith("1 of 2 accounts failed: beta")
    logged = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert logged and all(line.get("account") == "beta" for line in logged if "401" in str(line))
    assert any("401" in str(line) for line in logged)
    assert_csv_matches(acme, tmp_path / "accounts" / "acme" / "out")
    assert "sk_wrong_cli_3" not in result.output


def test_push_runs_every_account_in_turn(two: tuple[Path, Any, Any]) -> None:
    config, _, _ = two
    result = run(config, "push")
    assert result.exit_code == 0, result.output
    assert result.stdout.index("account acme") < result.stdout.index("account beta")
    result = run(config, "push", "--account", "gamma")
    assert result.exit_code == 2
    assert "no account 'gamma' (accounts: acme, beta)" in result.stderr


def test_the_daemon_refuses_several_accounts_on_one_line(two: tuple[Path, Any, Any]) -> None:
    config, _, _ = two
    result = run(config, "daemon")
    assert result.exit_code == 2
    assert (
        "this configuration has 2 accounts: run syncd daemon --account NAME per account, "
        "or syncd worker with a PostgreSQL store"
    ) in result.output.replace("\n", " ")


def test_commands_of_one_store_want_an_account_and_name_them(two: tuple[Path, Any, Any]) -> None:
    config, _, _ = two
    for args in (["errors"], ["errors", "show", "d1"], ["mappings", "preview", "csv", "invoices"]):
        result = run(config, *args)
        assert result.exit_code == 2, (args, result.output)
        assert "this configuration has 2 accounts (acme, beta): pass --account NAME" in result.stderr
    assert run(config, "errors", "--account", "acme").stdout.strip() == "no errors"
    assert run(config, "errors", "--account", "acme", "--json").exit_code == 0


def test_errors_and_preview_read_the_chosen_accounts_store(two: tuple[Path, Any, Any], tmp_path: Path) -> None:
    config, _, _ = two
    (tmp_path / "accounts" / "beta").mkdir(parents=True)
    store = Store.open(f"sqlite:///{tmp_path / 'accounts' / 'beta' / 'syncd.db'}")
    store.commit_deliveries("csv", "invoices", [], [("inv_beta_7", "bad amount")])
    store.close()
    assert "inv_beta_7" in run(config, "errors", "--account", "beta").stdout
    assert run(config, "errors", "--account", "acme").stdout.strip() == "no errors"
    assert "inv_beta_7" in run(config, "errors", "--account", "beta", "--json").stdout
    listed = run(config, "errors", "--account", "beta", "--json").stdout
    error_id = listed.split('"id": "')[1].split('"')[0]
    shown = run(config, "errors", "show", error_id, "--account", "beta")
    assert shown.exit_code == 0 and "bad amount" in shown.stdout
    assert run(config, "errors", "--account", "beta", "show", error_id).exit_code == 0


def test_mappings_check_and_store_upgrade_cover_every_account(two: tuple[Path, Any, Any]) -> None:
    config, _, _ = two
    result = run(config, "mappings", "check", "--no-against-store")
    assert result.exit_code == 0, result.output
    assert result.stdout.count("ok (connector csv)") == 2
    assert result.stdout.index("account acme") < result.stdout.index("account beta")
    result = run(config, "store", "upgrade")
    assert result.exit_code == 0, result.output
    assert "accounts/acme/syncd.db" in result.stdout and "accounts/beta/syncd.db" in result.stdout
    result = run(config, "store", "upgrade", "--account", "acme")
    assert "accounts/beta" not in result.stdout


def test_a_single_account_config_shows_no_account_heading(make_sandbox: Any, tmp_path: Path) -> None:
    sandbox = make_sandbox()
    config = tmp_path / "syncd.toml"
    config.write_text(
        f'[invoiced]\nbase_url = "{sandbox.url}"\napi_key = "{sandbox.api_key}"\n'
        f'[connectors.csv]\ndirectory = "out"\nmapping = "{CSV_MAPPING}"\n'
    )
    result = run(config, "sync")
    assert result.exit_code == 0, result.output
    assert "account " not in result.stdout
    assert_csv_matches(sandbox, tmp_path / "out")
    result = run(config, "status")
    assert result.exit_code == 0 and "account " not in result.stdout
    result = run(config, "status", "--account", "acme")
    assert result.exit_code == 2 and "this configuration has no [accounts] tables" in result.stderr


def test_status_shows_the_other_accounts_when_one_store_is_unusable(two: tuple[Path, Any, Any], tmp_path: Path) -> None:
    config, _, _ = two
    config.write_text(config.read_text() + '[accounts.beta.store]\nurl = "sqlite:////nonexistent/syncd/beta.db"\n')
    result = run(config, "status")
    assert result.exit_code == 2
    acme_part, beta_part = result.stdout.split("account beta")
    assert "cursors" in acme_part and "push-back outbox" in acme_part
    assert "error: store.url: checkpoint store sqlite:////nonexistent/syncd/beta.db unusable" in beta_part
