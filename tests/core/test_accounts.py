"""`[accounts.NAME]`: tables merged over the top-level sections, each account with its own
key (never the top-level one), state folder and store; a config without accounts unchanged."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from syncd import log, registry
from syncd.accounts import account_store_url, accounts_of, load_accounts, select_account, state_folder
from syncd.config import load_settings
from syncd.errors import ConfigError

TOP_KEY = "sk_top_level_secret_1"
ACME_KEY = "sk_acme_secret_2"
BETA_KEY = "sk_beta_secret_3"

SHARED = f"""
[invoiced]
base_url = "http://127.0.0.1:9"
api_key = "{TOP_KEY}"
per_page = 50
[streams.transactions]
enabled = false
[connectors.csv]
directory = "out"
render_every = 5.0
[connectors.ledger]
enabled = true
path = "books.ledger"
[pushback]
allow_overpayment = true
[daemon]
invoices_every = 120
health_port = 8790
"""


@pytest.fixture(autouse=True)
def _keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACME_KEY", ACME_KEY)
    monkeypatch.delenv("SYNCD_INVOICED__API_KEY", raising=False)


def write(tmp_path: Path, body: str) -> Path:
    config = tmp_path / "syncd.toml"
    config.write_text(body)
    return config


def refused(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as raised:
        load_accounts(path)
    return raised.value


def test_an_account_table_is_merged_over_the_top_level_sections(tmp_path: Path) -> None:
    config = write(
        tmp_path,
        SHARED
        + """
[accounts.acme.invoiced]
api_key_env = "ACME_KEY"
per_page = 20
[accounts.acme.streams.transactions]
enabled = true
[accounts.acme.streams.invoices]
metadata = { region = "eu" }
[accounts.acme.connectors.csv]
directory = "acme-out"
[accounts.acme.pushback]
enabled = false
[accounts.acme.daemon]
health_port = 8791

[accounts.beta.invoiced]
api_key_env = "BETA_KEY"
""",
    )
    with pytest.MonkeyPatch.context() as env:
        env.setenv("BETA_KEY", BETA_KEY)
        accounts = load_accounts(config)
    assert list(accounts) == ["acme", "beta"]
    acme, beta = accounts["acme"], accounts["beta"]
    assert (acme.account, beta.account) == ("acme", "beta")
    # the account's own values win; what it does not set comes from the top level
    assert acme.invoiced.per_page == 20 and beta.invoiced.per_page == 50
    assert acme.invoiced.base_url == beta.invoiced.base_url == "http://127.0.0.1:9"
    assert acme.streams.transactions.enabled and not beta.streams.transactions.enabled
    assert acme.streams.invoices.metadata == {"region": "eu"} and beta.streams.invoices.metadata == {}
    # connectors merge per name and per key: csv keeps the shared render_every, ledger is inherited whole
    assert acme.connectors["csv"] == {"directory": "acme-out", "render_every": 5.0}
    assert beta.connectors["csv"] == {"directory": "out", "render_every": 5.0}
    assert acme.connectors["ledger"] == beta.connectors["ledger"] == {"enabled": True, "path": "books.ledger"}
    assert not acme.pushback.enabled and acme.pushback.allow_overpayment  # the other key still shared
    assert beta.pushback.enabled and beta.pushback.allow_overpayment
    assert (acme.daemon.health_port, acme.daemon.invoices_every) == (8791, 120)
    assert (beta.daemon.health_port, beta.daemon.invoices_every) == (8790, 120)
    assert acme.accounts == {} and acme.source == config.resolve()


def test_each_account_has_its_own_key_from_its_variable_or_its_environment_form(tmp_path: Path) -> None:
    config = write(tmp_path, SHARED + '[accounts.acme.invoiced]\napi_key_env = "ACME_KEY"\n[accounts.beta]\n')
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SYNCD_ACCOUNTS__BETA__INVOICED__API_KEY", BETA_KEY)
        accounts = load_accounts(config)
    assert accounts["acme"].invoiced.api_key.get_secret_value() == ACME_KEY
    assert accounts["beta"].invoiced.api_key.get_secret_value() == BETA_KEY
    assert ACME_KEY not in log.redact_text(f"key {ACME_KEY} and {BETA_KEY}")  # registered as secrets
    assert BETA_KEY not in log.redact_text(f"key {BETA_KEY}")


def test_the_environment_form_also_overrides_other_keys_of_an_account(tmp_path: Path) -> None:
    config = write(tmp_path, SHARED + '[accounts.acme.invoiced]\napi_key_env = "ACME_KEY"\n')
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SYNCD_ACCOUNTS__ACME__INVOICED__PER_PAGE", "7")
        env.setenv("SYNCD_ACCOUNTS__ACME__CONNECTORS__CSV__DIRECTORY", "env-out")
        acme = load_accounts(config)["acme"]
    assert acme.invoiced.per_page == 7
    assert acme.connectors["csv"]["directory"] == "env-out"


@pytest.mark.parametrize("top_key_from_env", [False, True])
def test_the_top_level_key_is_never_an_accounts_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, top_key_from_env: bool
) -> None:
    body = SHARED + "[accounts.acme]\n"
    if top_key_from_env:
        body = body.replace(f'api_key = "{TOP_KEY}"', "")
        monkeypatch.setenv("SYNCD_INVOICED__API_KEY", TOP_KEY)
    config = write(tmp_path, body)
    assert load_settings(config).invoiced.api_key.get_secret_value() == TOP_KEY  # the top level has it
    error = refused(config)
    assert (error.path, error.key) == (str(config.resolve()), "accounts.acme.invoiced.api_key")
    assert "api_key_env" in str(error) and "SYNCD_ACCOUNTS__ACME__INVOICED__API_KEY" in str(error)
    assert TOP_KEY not in str(error) and "\n" not in str(error)


def test_an_unset_key_variable_is_named_but_no_key_is_shown(tmp_path: Path) -> None:
    config = write(tmp_path, SHARED + '[accounts.acme.invoiced]\napi_key_env = "NOT_SET_ACME"\n')
    error = refused(config)
    assert error.key == "accounts.acme.invoiced.api_key_env"
    assert str(error) == (
        f"{config.resolve()}: accounts.acme.invoiced.api_key_env: "
        "environment variable NOT_SET_ACME (its api_key_env) is not set"
    )


def test_an_invalid_value_in_an_account_names_file_and_key_without_the_key(tmp_path: Path) -> None:
    config = write(
        tmp_path, SHARED + '[accounts.acme.invoiced]\napi_key_env = "ACME_KEY"\nper_page = 0\n'
    )
    error = refused(config)
    assert (error.path, error.key) == (str(config.resolve()), "accounts.acme.invoiced.per_page")
    assert ACME_KEY not in str(error) and TOP_KEY not in str(error)
    config = write(tmp_path, SHARED + '[accounts.acme]\nstreems = {}\n')
    assert refused(config).key == "accounts.acme.streems"


@pytest.mark.parametrize("name", ["Acme", "1acme", "ac-me", "a" * 41, "default"])
def test_a_bad_account_name_is_refused_naming_it(tmp_path: Path, name: str) -> None:
    config = write(tmp_path, SHARED + f'[accounts."{name}".invoiced]\napi_key_env = "ACME_KEY"\n')
    error = refused(config)
    assert error.key == f"accounts.{name}" and "lower-case letter" in str(error)


@pytest.mark.parametrize("key", ["accounts", "account", "source"])
def test_an_account_may_not_name_accounts_itself(tmp_path: Path, key: str) -> None:
    config = write(tmp_path, SHARED + f'[accounts.acme]\n{key} = {{}}\n')
    assert refused(config).key == f"accounts.acme.{key}"


def test_an_account_only_the_environment_names_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = write(tmp_path, SHARED + '[accounts.acme.invoiced]\napi_key_env = "ACME_KEY"\n')
    monkeypatch.setenv("SYNCD_ACCOUNTS__ACNE__INVOICED__API_KEY", "sk_typo_secret")
    error = refused(config)
    assert error.path == "environment variable SYNCD_ACCOUNTS__ACNE__INVOICED__API_KEY"
    assert "[accounts.acne]" in str(error) and "sk_typo_secret" not in str(error)


def test_each_account_has_its_own_state_folder_store_outputs_and_inbox(tmp_path: Path) -> None:
    config = write(
        tmp_path,
        SHARED.replace('directory = "out"', 'directory = "out"\ninbox = "inbox/payments.csv"')
        + '[accounts.acme.invoiced]\napi_key_env = "ACME_KEY"\n'
        + '[accounts.beta]\nstate_dir = "/srv/beta"\n[accounts.beta.invoiced]\napi_key_env = "ACME_KEY"\n',
    )
    accounts = load_accounts(config)
    acme = accounts["acme"]
    folder = tmp_path.resolve() / "accounts" / "acme"
    assert acme.state_root() == folder
    assert acme.store_url() == f"sqlite:///{folder / 'syncd.db'}"
    assert accounts["beta"].state_root() == Path("/srv/beta")  # its own state_dir wins
    # connectors resolve their relative paths against the account's state folder
    spec = next(s for s in registry.configured(acme) if s.name == "csv")
    assert spec.settings.directory == Path("out") and spec.settings.inbox == Path("inbox/payments.csv")
    from syncd.store import Store

    assert not folder.exists()
    state_folder(acme)  # what every command does before opening the store
    store = Store.open(acme.store_url())
    try:
        connector = registry.build(spec, store, acme)
        assert connector.context.state_dir == folder
        assert connector._directory() == folder / "out"  # type: ignore[attr-defined]
    finally:
        store.close()


def test_a_state_dir_set_for_all_holds_one_folder_per_account(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNCD_STATE_DIR", str(tmp_path / "state"))
    config = write(tmp_path, SHARED + '[accounts.acme.invoiced]\napi_key_env = "ACME_KEY"\n')
    acme = load_accounts(config)["acme"]
    assert acme.state_root() == tmp_path / "state" / "accounts" / "acme"


def test_a_top_level_store_url_from_the_environment_is_each_accounts_base(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SYNCD_STORE__URL", "postgresql://db/syncd")
    config = write(tmp_path, SHARED + '[accounts.acme.invoiced]\napi_key_env = "ACME_KEY"\n')
    url = load_accounts(config)["acme"].store_url()
    assert url.startswith("postgresql://db/syncd?options=") and "syncd_acme" in url


def test_an_absolute_sqlite_store_gets_one_file_per_account(tmp_path: Path) -> None:
    config = write(
        tmp_path,
        SHARED + f'[store]\nurl = "sqlite:///{tmp_path}/all.db"\n[accounts.acme.invoiced]\napi_key_env = "ACME_KEY"\n',
    )
    assert load_accounts(config)["acme"].store_url() == f"sqlite:///{tmp_path}/all-acme.db"


def test_a_postgresql_store_gets_the_accounts_own_schema(tmp_path: Path) -> None:
    base = "postgresql://syncd:pw@db.example:5432/syncd?sslmode=require"
    url = account_store_url(base, "acme")
    query = parse_qs(urlsplit(url).query)
    assert query["sslmode"] == ["require"]
    assert query["options"] == ["-csearch_path=syncd_acme -csyncd.create_schema=syncd_acme"]
    other = account_store_url("postgresql://db/syncd?options=-cstatement_timeout%3D5000", "acme")
    assert parse_qs(urlsplit(other).query)["options"] == [
        "-cstatement_timeout=5000 -csearch_path=syncd_acme -csyncd.create_schema=syncd_acme"
    ]
    config = write(
        tmp_path,
        SHARED
        + '[store]\nurl = "postgresql://db/syncd?options=-csearch_path%3Dshared"\n'
        + '[accounts.acme.invoiced]\napi_key_env = "ACME_KEY"\n',
    )
    error = refused(config)
    assert (error.path, error.key) == (str(config.resolve()), "store.url") and "search_path" in str(error)
    # an account that names its own store keeps it as written
    config.write_text(config.read_text() + '[accounts.acme.store]\nurl = "postgresql://db/acme"\n')
    assert load_accounts(config)["acme"].store_url() == "postgresql://db/acme"


def test_a_config_without_accounts_is_one_default_account_unchanged(tmp_path: Path) -> None:
    config = write(tmp_path, SHARED)
    top = load_settings(config)
    assert accounts_of(top) == {"default": top}
    assert accounts_of(top)["default"] is top
    chosen = select_account(config, None)
    assert chosen.account == "default" and chosen.model_dump() == top.model_dump()
    assert chosen.invoiced.api_key.get_secret_value() == TOP_KEY
    assert chosen.store_url() == f"sqlite:///{tmp_path.resolve() / 'syncd.db'}"
    assert select_account(config, "default").account == "default"
    with pytest.raises(ConfigError, match="this configuration has no \\[accounts\\] tables"):
        select_account(config, "acme")


def test_select_account_names_the_accounts_when_it_cannot_choose(tmp_path: Path) -> None:
    config = write(
        tmp_path,
        SHARED + '[accounts.acme.invoiced]\napi_key_env = "ACME_KEY"\n[accounts.beta.invoiced]\napi_key_env = "ACME_KEY"\n',
    )
    assert select_account(config, "beta").account == "beta"
    with pytest.raises(ConfigError) as raised:
        select_account(config, None)
    assert str(raised.value) == (
        f"{config.resolve()}: this configuration has 2 accounts (acme, beta): pass --account NAME"
    )
    with pytest.raises(ConfigError, match=r"no account 'gamma' \(accounts: acme, beta\)"):
        select_account(config, "gamma")


def test_the_commented_accounts_example_loads_once_uncommented(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    example = (Path(__file__).parents[2] / "config.example.toml").read_text(encoding="utf-8")
    head, tail = example.split("# [accounts.acme.invoiced]", 1)
    block = "[accounts.acme.invoiced]" + "\n".join(line.removeprefix("# ") for line in tail.splitlines())
    monkeypatch.setenv("ACME_INVOICED_KEY", ACME_KEY)
    monkeypatch.setenv("GLOBEX_INVOICED_KEY", BETA_KEY)
    accounts = load_accounts(write(tmp_path, head + block + "\n"))
    assert list(accounts) == ["acme", "globex"]
    assert not accounts["acme"].streams.transactions.enabled and accounts["globex"].streams.transactions.enabled
    assert accounts["acme"].connectors["hubspot"]["enabled"] is True
    assert accounts["globex"].connectors["csv"]["directory"] == "exports"
