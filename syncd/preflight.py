"""Checks a configuration passes before any request is sent or any store is opened.

Field checks (`http_url`, `store_url`) run when the configuration is validated; `check`
runs before a command that talks to Invoiced (`sync`, `push`, `daemon`), so a missing key
or an unwritable store folder fails at once, naming the file and the key, instead of after
a round of 401s or a long wait for a store that can never open.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from syncd.errors import ConfigError

if TYPE_CHECKING:
    from syncd.config import Settings

API_KEY_ENV = "SYNCD_INVOICED__API_KEY"
STORE_SCHEMES = ("sqlite", "postgresql", "postgres", "postgresql+psycopg")


def http_url(value: str) -> str:
    """An http(s) base URL with a host and no credentials in it; ValueError otherwise."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError as exc:
        raise ValueError(f"not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host, e.g. https://api.invoiced.com")
    if "@" in parts.netloc:
        # The URL is shown by `syncd status` and in logs; credentials belong in api_key/token.
        raise ValueError("must not contain credentials (user:password@): put the key in api_key")
    return value


def store_url(value: str) -> str:
    """A SQLite or PostgreSQL URL; ValueError otherwise."""
    scheme = value.split("://", 1)[0] if "://" in value else ""
    if scheme not in STORE_SCHEMES:
        raise ValueError(
            "must be sqlite:///PATH or postgresql://USER@HOST:PORT/DB"
            + (f", not {scheme}://" if scheme else "")
        )
    return value


def _config_name(settings: Settings) -> str | None:
    return str(settings.source) if settings.source else None


def require_api_key(settings: Settings) -> None:
    """ConfigError unless an API key is set (in the file or in SYNCD_INVOICED__API_KEY)."""
    key = settings.invoiced.api_key.get_secret_value()
    problem = None
    if not key.strip():
        problem = "no API key: set api_key in [invoiced] or the environment variable " + API_KEY_ENV
    elif key != key.strip():
        problem = "the API key has leading or trailing spaces (check the file or " + API_KEY_ENV + ")"
    if problem:
        raise ConfigError(problem, path=_config_name(settings), key="invoiced.api_key")


def sqlite_path(settings: Settings) -> Path | None:
    """The database file of a SQLite store (None for PostgreSQL or an in-memory store)."""
    url = settings.store_url()
    prefix = "sqlite:///"
    if not url.startswith(prefix) or ":memory:" in url:
        return None
    return Path(url[len(prefix) :].split("?", 1)[0])


def check_store_path(settings: Settings) -> None:
    """ConfigError unless a SQLite store's folder exists and this user may write there.

    SQLite writes a journal beside the database, so the folder must be writable, not only
    the file. Without this check the daemon would wait `store_unreachable_exit` seconds for
    a store that can never open (e.g. a relative path under a read-only /etc). An account's
    own state folder (`<state root>/accounts/NAME`) is made here first.
    """
    from syncd.accounts import state_folder  # syncd.accounts imports config, which imports us

    state_folder(settings)
    path = sqlite_path(settings)
    if path is None:
        return
    folder = path.parent
    problem = None
    if not folder.is_dir():
        problem = f"folder {folder} does not exist"
    elif not os.access(folder, os.W_OK | os.X_OK):
        problem = f"folder {folder} is not writable by this user"
    elif path.exists() and not os.access(path, os.R_OK | os.W_OK):
        problem = f"{path} is not readable and writable by this user"
    if problem:
        hint = (
            ""
            if settings.state_dir
            else " (relative paths resolve against state_dir, else the config file's folder)"
        )
        raise ConfigError(f"checkpoint store {problem}{hint}", path=_config_name(settings), key="store.url")


def check(settings: Settings) -> None:
    """Everything a command that syncs needs before its first request."""
    require_api_key(settings)
    check_store_path(settings)
