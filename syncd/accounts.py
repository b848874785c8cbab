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
  table sets `store.url`), so that one database serves every account. The derived URL also
  carries `-csyncd.create_schema=syncd_NAME`, which lets the store create that schema on
  first use (syncd.store.schema); a search_path written by hand is never created.

A configuration without `[accounts]` is one account named "default", unchanged. An
environment variable `SYNCD_ACCOUNTS__NAME__...` only adds to an account the file names: a
typo in it must not conjure up an account that syncs with the top-level settings.
"""

from __future__ import annotations

import contextlib
import os
import re
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from pydantic import ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from syncd import log
from syncd.config import Settings, load_settings
from syncd.errors import ConfigError
from syncd.store.schema import CREATE_SCHEMA

DEFAULT = "default"
NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
SCHEMA_PREFIX = "syncd_"
ENV_PREFIX = "SYNCD_ACCOUNTS__"
# What an account table may not hold: which accounts exist is the top level's business.
NOT_PER_ACCOUNT = ("accounts", "account", "source")


def load_accounts(path: Path | str | None = None) -> dict[str, Settings]:
    """Every account of a configuration by name, each a complete single-account Settings."""
    return accounts_of(load_settings(path))


def accounts_of(top: Settings) -> dict[str, Settings]:
    """The accounts of loaded top-level settings (`{"default": top}` when it names none)."""
    if not top.accounts:
        return {DEFAULT: top}
    _refuse_env_only(top)
    return {name: _account(top, name, table) for name, table in sorted(top.accounts.items())}


def select_account(path: Path | str | None, name: str | None) -> Settings:
    """The settings of `--account NAME`; without a name, the only account (refused when there
    are several, naming them)."""
    top = load_settings(path)
    return pick(top, accounts_of(top), name)


def pick(top: Settings, accounts: dict[str, Settings], name: str | None) -> Settings:
    """Account `name` of `accounts` (those of `top`), or the only one; ConfigError otherwise."""
    where = _where(top)
    if name is None:
        if len(accounts) == 1:
            return next(iter(accounts.values()))
        raise ConfigError(
            f"this configuration has {len(accounts)} accounts ({', '.join(accounts)}): pass --account NAME",
            path=where,
        )
    if name not in accounts:
        if not top.accounts:
            raise ConfigError(f"no account {name!r}: this configuration has no [accounts] tables", path=where)
        raise ConfigError(f"no account {name!r} (accounts: {', '.join(accounts)})", path=where)
    return accounts[name]


def state_folder(settings: Settings) -> None:
    """Create an account's own state folder (`<state root>/accounts/NAME`) if it is missing.

    Only that folder: a state root that does not exist is the user's to make, and is
    reported by preflight as before."""
    if settings.account == DEFAULT or settings.state_dir is None:
        return
    folder = settings.state_root()
    if folder.name != settings.account or folder.parent.name != "accounts" or not folder.parent.parent.is_dir():
        return
    with contextlib.suppress(OSError):  # preflight names the folder and why it cannot be used
        folder.mkdir(parents=True, exist_ok=True)


def _where(top: Settings) -> str:
    return str(top.source) if top.source else "configuration"


def _refuse_env_only(top: Settings) -> None:
    """An account that only an environment variable names (a typo, or a stale variable)."""
    if top.source is None:
        return
    try:
        in_file = tomllib.loads(top.source.read_text(encoding="utf-8")).get("accounts", {})
    except (OSError, tomllib.TOMLDecodeError):
        return  # just read by load_settings: nothing to add
    for name in sorted(set(top.accounts) - set(in_file)):
        variables = sorted(v for v in os.environ if v.upper().startswith(f"{ENV_PREFIX}{name.upper()}__"))
        raise ConfigError(
            f"names account {name!r}, which has no [accounts.{name}] table in {top.source}",
            path=f"environment variable {variables[0] if variables else ENV_PREFIX + name.upper()}",
        )


class _Merged(Settings):
    """An account's settings, validated from the merged tables alone. The environment has
    already been applied, to the top level and to `accounts.NAME` (SYNCD_ACCOUNTS__NAME__...);
    read again here, a top-level SYNCD_INVOICED__API_KEY or SYNCD_STORE__URL would override
    every account's own key and store."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _account(top: Settings, name: str, table: dict[str, Any]) -> Settings:
    where = _where(top)
    if not NAME.match(name) or name == DEFAULT:
        raise ConfigError(
            "an account name is a lower-case letter, then up to 39 lower-case letters, digits or _"
            + (f" (and not {DEFAULT!r}, the name of a configuration without accounts)" if name == DEFAULT else ""),
            path=where,
            key=f"accounts.{name}",
        )
    for key in NOT_PER_ACCOUNT:
        if key in table:
            raise ConfigError("not allowed in an account's table", path=where, key=f"accounts.{name}.{key}")
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
    store = table.setdefault("store", {})
    if not isinstance(store, dict):
        raise ConfigError("must be a table", path=where, key=f"accounts.{name}.store")
    if "url" not in store:
        store["url"] = account_store_url(top.store.url, name, where=where)
    try:
        settings = _Merged(**_merge(base, table), source=top.source, account=name)
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
    for section in settings.connectors.values():
        log.register_secret_fields(section)  # an account's own CRM token, say
    return settings


def account_store_url(url: str, name: str, *, where: str | None = None) -> str:
    """The store of account `name` when it sets none: SQLite keeps its relative path (it then
    lands in the account's state folder); PostgreSQL gets the account's own schema, which the
    store may create (`syncd.create_schema`, see syncd.store.schema)."""
    if not url.startswith(("postgresql", "postgres:")):
        if url.startswith("sqlite:////"):
            path = Path(url[len("sqlite:///") :])
            return f"sqlite:///{path.with_name(f'{path.stem}-{name}{path.suffix}')}"
        return url
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    options = [v for k, v in query if k == "options"]
    if any("search_path" in v for v in options):
        raise ConfigError(
            f"sets a search_path, which every account would share: give [accounts.{name}.store] url "
            "its own, or leave the search_path out (each account then gets its schema syncd_NAME)",
            path=where,
            key="store.url",
        )
    schema = f"{SCHEMA_PREFIX}{name}"
    mine = f"-csearch_path={schema} -c{CREATE_SCHEMA}={schema}"
    query = [(k, v) for k, v in query if k != "options"] + [("options", " ".join([*options, mine]))]
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))
