"""A daemon serves one account: its reload re-reads that account's table, and a daemon of a
configuration without accounts refuses a reload that now names some."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd.daemon import reload
from syncd.errors import ConfigError
from tests.engine.helpers import CSV_MAPPING

BASE = f'[invoiced]\nbase_url = "http://127.0.0.1:9"\napi_key = "sk_top_reload"\n[connectors.csv]\nmapping = "{CSV_MAPPING}"\n'
ACCOUNTS = '[accounts.acme.invoiced]\napi_key_env = "ACME_KEY"\nper_page = 20\n[accounts.beta.invoiced]\napi_key_env = "ACME_KEY"\n'


def test_an_account_daemon_reloads_its_own_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACME_KEY", "sk_acme_reload")
    config = tmp_path / "syncd.toml"
    config.write_text(BASE + ACCOUNTS)
    loaded = reload.load(config, "acme")
    assert loaded.settings.account == "acme" and loaded.settings.invoiced.per_page == 20
    assert loaded.settings.invoiced.api_key.get_secret_value() == "sk_acme_reload"
    config.write_text(BASE + ACCOUNTS.replace("per_page = 20", "per_page = 30"))
    assert reload.load(config, "acme").settings.invoiced.per_page == 30
    config.write_text(BASE + ACCOUNTS.replace("[accounts.acme.invoiced]", "[accounts.acne.invoiced]"))
    with pytest.raises(ConfigError, match="no account 'acme'"):
        reload.load(config, "acme")


def test_a_daemon_without_accounts_refuses_a_config_that_now_names_some(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACME_KEY", "sk_acme_reload")
    config = tmp_path / "syncd.toml"
    config.write_text(BASE)
    assert reload.load(config).settings.account == "default"
    config.write_text(BASE + ACCOUNTS)
    with pytest.raises(ConfigError, match=r"now names \[accounts\]: restart as syncd daemon --account NAME"):
        reload.load(config)
