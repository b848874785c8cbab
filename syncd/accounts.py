"""Several Invoiced accounts in one configuration: `[accounts.NAME]` tables.

An account table may hold any top-level section (`invoiced`, `store`, `streams`,
`connectors`, `pushback`, `daemon`) and `state_dir`; it is merged over the top-level
sections, so what accounts share is written once. What each account has of its own:

- its API key, from the environment: `[accounts.NAME.invoiced] api_key_env = "VAR"`, or
  `SYNCD_ACCOUNTS__NAME__INVOICED__API_KEY`. Never the top-level key: an account that
  silently used another account's key would sync one client's books into another's.
- its state folder, `<state root>/accounts/NAME` unless the table sets `state_dir`: the
  SQLite store, connector outputs and inbox of one account never mix with another's.
- on PostgreSQL, its own schema `syncd_NAME` in the top-level store's database (unless the
  table sets `store.url`), so that one database serves every account.

A configuration without `[accounts]` is one account named "default", unchanged.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import ValidationError

from syncd import log
from syncd.config import Settings, load_settings
from syncd.errors import ConfigError

DEFAULT = "default"
NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
SCHEMA_PREFIX = "syncd_"


def load_accounts(path: Path | str | None = None) -> dict[str, Settings]:
    """Every account of a configuration by name, each a complete single-account Settings."""
    return accounts_of(load_settings(path))


def accounts_of(top: Settings) -> dict[str, Settings]:
    """The accounts of loaded top-level settings (`{"default": top}` when it names none)."""
    if not top.accounts:
        return {DEFAULT: top}
    return {name: _account(top, name, table) for name, table in sorted(top.accounts.items())}


def select_account(path: Path | str | None, name: str | None) -> Settings:
    """The settings of `--account NAME`; without a name, the only account (refused when there
    are several, naming them)."""
    accounts = load_accounts(path)
    if name is None:
        if len(accounts) == 1:
            return next(iter(accounts.values()))
        raise ConfigError(f"this configuration has {len(accounts)} accounts ({', '.join(accounts)}): pass --account NAME")
    if name not in accounts:
        raise ConfigError(f"no account {name!r} in this configuration (accounts: {', '.join(accounts)})")
    return accounts[name]


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _account(top: Settings, name: str, table: dict[str, Any]) -> Settings:
    where = str(top.source) if top.source else "configuration"
    if not NAME.match(name):
        raise ConfigError(
            "an account name is a lower-case letter, then up to 39 lower-case letters, digits or _",
            path=where,
            key=f"accounts.{name}",
        )
    table = {k: (dict(v) if isinstance(v, dict) else v) for k, v in table.items()}
    invoiced = table.setdefault("invoiced", {})
    if not isinstance(invoiced, dict):
        raise ConfigError("must be a table", path=where, key=f"accounts.{name}.invoiced")
    variable = invoiced.pop("api_key_env", None)
    if variable is not None:
        if not isinstance(variable, str) or not os.environ.get(variable):
            raise ConfigError(
                f"environment variable {variable} (its api_key_env) is not set",
                path=where,
                key=f"accounts.{name}.invoiced.api_key_env",
            )
        invoiced["api_key"] = os.environ[variable]
    base = top.model_dump(exclude={"accounts", "account", "source"})
    base["invoiced"]["api_key"] = ""  # never inherited: see the module docstring
    if "state_dir" not in table:
        table["state_dir"] = str(top.state_root() / "accounts" / name)
    if "url" not in table.get("store", {}):
        table.setdefault("store", {})["url"] = account_store_url(top.store.url, name)
    try:
        settings = Settings.model_validate({**_merge(base, table), "source": top.source, "account": name})
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        raise ConfigError(first["msg"].removeprefix("Value error, "), path=where, key=f"accounts.{name}.{key}") from None
    if not settings.invoiced.api_key.get_secret_value():
        raise ConfigError(
            f"account {name} has no API key: set [accounts.{name}.invoiced] api_key_env, "
            f"or SYNCD_ACCOUNTS__{name.upper()}__INVOICED__API_KEY",
            path=where,
            key=f"accounts.{name}.invoiced.api_key",
        )
    log.register_secret(settings.invoiced.api_key.get_secret_value())
    return settings


def account_store_url(url: str, name: str) -> str:
    """The store of account `name` when it sets none: SQLite keeps its relative path (it then
    lands in the account's state folder); PostgreSQL gets the account's own schema."""
    if not url.startswith(("postgresql", "postgres:")):
        if url.startswith("sqlite:////"):
            path = Path(url[len("sqlite:///") :])
            return f"sqlite:///{path.with_name(f'{path.stem}-{name}{path.suffix}')}"
        return url
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    if any(k == "options" for k, _ in query):
        raise ConfigError(
            f"store.url sets options: give [accounts.{name}.store] url its own search_path", key="store.url"
        )
    query.append(("options", f"-csearch_path={SCHEMA_PREFIX}{name}"))
    return urlunsplit(parts._replace(query=urlencode(query)))
