"""Typed configuration: a TOML file plus `SYNCD_` environment overrides (`__` nests).

    [invoiced]  base_url, api_key, timeout, per_page, retry_*, rate_limit_budget, request_deadline
    [store]     url
    [streams.customers|invoices|transactions]  enabled, metadata = {..}, filter = {..}
    [connectors.NAME]  enabled, mapping, and the connector's own keys
    [pushback]  allow_overpayment, ...
    [daemon]    schedules, health port, lock expiry
    [worker]    `syncd worker`: concurrency, scheduling tick, stall timeout, job history

Connector sections are validated by each connector's own settings model at load, so a
typo in `[connectors.csv]` fails before any request, naming the file and the key.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

from syncd import log, preflight
from syncd.config_env import env_source, unreadable
from syncd.errors import ConfigError

DEFAULT_CONFIG = Path("syncd.toml")
SANDBOX_URL = "http://127.0.0.1:8765"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InvoicedSettings(_Section):
    base_url: Annotated[str, AfterValidator(preflight.http_url)] = "https://api.invoiced.com"
    api_key: SecretStr = SecretStr("")
    timeout: float = Field(30.0, gt=0)
    per_page: int = Field(100, ge=1, le=100)
    retry_attempts: int = Field(8, ge=1)
    retry_budget: float = Field(300.0, gt=0, description="seconds a request may spend retrying")
    rate_limit_budget: float = Field(
        3600.0, gt=0, description="seconds a run may spend waiting on rate limits (429s) in all"
    )
    request_deadline: float = Field(
        120.0, gt=0, description="seconds one request may take in all, its response body included"
    )
    max_connections: int = Field(16, ge=1)


class StoreSettings(_Section):
    url: Annotated[str, AfterValidator(preflight.store_url)] = "sqlite:///syncd.db"


class StreamSettings(_Section):
    enabled: bool = True
    metadata: dict[str, str] = Field(default_factory=dict)
    filter: dict[str, str] = Field(default_factory=dict)
    windows: int = Field(
        4, ge=1, le=32, description="parallel date windows for a first pass (invoices, transactions)"
    )


class StreamsSettings(_Section):
    customers: StreamSettings = Field(default_factory=StreamSettings)
    invoices: StreamSettings = Field(default_factory=StreamSettings)
    transactions: StreamSettings = Field(default_factory=StreamSettings)

    def enabled(self) -> dict[str, StreamSettings]:
        """The enabled streams, in dependency order (customers first)."""
        return {name: s for name, s in self.__dict__.items() if s.enabled}


class PushbackSettings(_Section):
    enabled: bool = True
    allow_overpayment: bool = False
    metadata_key: str = Field("syncd_external_id", max_length=40)
    lookup_grace: float = Field(0.0, ge=0, description="seconds before an unknown outcome is looked up")
    duplicate_check: bool = True
    duplicate_window_days: int = Field(3, ge=0, description="days apart a hand-entered duplicate may be")
    max_days_past: int = Field(3650, ge=0, description="refuse payment dates older than this")
    max_days_future: int = Field(7, ge=0, description="refuse payment dates further ahead than this")


class DaemonSettings(_Section):
    invoices_every: int = Field(300, ge=1, description="seconds between pulls of invoices")
    customers_every: int = Field(300, ge=1)
    transactions_every: int = Field(300, ge=1)
    pushback_every: int = Field(60, ge=1)
    health_host: str = "127.0.0.1"
    health_port: int = Field(8787, ge=0, le=65535)
    lock_ttl: int = Field(60, ge=5, description="seconds before a dead daemon's lock may be taken over")
    store_unreachable_exit: int = Field(
        600, ge=1, description="exit non-zero after this long without the store"
    )
    stale_cursor_after: int = Field(
        3600, ge=1, description="degraded when a cursor has not advanced this long"
    )
    failures_degraded: int = Field(
        3, ge=1, description="consecutive job failures that make /healthz degraded"
    )


class WorkerSettings(_Section):
    """`syncd worker` (the job engine on PostgreSQL): read from the top level only."""

    concurrency: int = Field(4, ge=1, le=64, description="jobs one worker process runs at a time")
    tick: int = Field(5, ge=1, le=59, description="seconds between passes that queue the jobs due")
    stall_timeout: int = Field(
        30, ge=3, description="seconds without a worker's heartbeat before its jobs go to another"
    )
    keep_hours: int = Field(24, ge=1, description="hours finished jobs stay listed by `syncd jobs`")


class Settings(BaseSettings):
    """The whole configuration of one syncd installation."""

    model_config = SettingsConfigDict(env_prefix="SYNCD_", env_nested_delimiter="__", extra="forbid")

    invoiced: InvoicedSettings = Field(default_factory=InvoicedSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    streams: StreamsSettings = Field(default_factory=StreamsSettings)
    connectors: dict[str, dict[str, Any]] = Field(default_factory=lambda: {"csv": {"enabled": True}})
    pushback: PushbackSettings = Field(default_factory=PushbackSettings)
    daemon: DaemonSettings = Field(default_factory=DaemonSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # Where relative state paths (the SQLite store, output files, the inbox) resolve; the
    # config file's folder when unset. A service points it at /var/lib/syncd (SYNCD_STATE_DIR).
    state_dir: Path | None = None

    # Raw `[accounts.NAME]` tables; syncd.accounts turns each into its own Settings.
    accounts: dict[str, dict[str, Any]] = Field(default_factory=dict)
    # Which account these settings are ("default" for a single-account config).
    account: str = Field("default", exclude=True)

    # Where the file was read from; relative paths in it resolve against its folder.
    source: Path | None = Field(None, exclude=True)

    @field_validator("connectors", "accounts", mode="before")
    @classmethod
    def _connector_tables(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, dict):
            for name, section in value.items():
                if not isinstance(section, dict):
                    raise ValueError(f"[{info.field_name}.{name}] must be a table")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment wins over the file (passed as init values), so a key can stay out of the file.
        return env_settings, init_settings

    def resolve(self, path: Path | str) -> Path:
        """A path from the config, relative to the config file's folder."""
        p = Path(path).expanduser()
        if p.is_absolute() or self.source is None:
            return p
        return self.source.parent / p

    def state_root(self) -> Path:
        """The folder relative state paths resolve against: `state_dir`, else the config's folder."""
        return self.resolve(self.state_dir if self.state_dir is not None else ".")

    def store_url(self) -> str:
        """The store URL, with a relative SQLite path resolved against `state_root()`."""
        url = self.store.url
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
            return prefix + str(self.state_root() / url[len(prefix) :])
        return url


def _format_loc(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc)


def load_settings(path: Path | str | None = None, *, required: bool = False) -> Settings:
    """Read and validate the configuration; raise ConfigError naming the file and key.

    With no file at `path` (and `required` false) the defaults and environment apply.
    """
    file = Path(path) if path is not None else DEFAULT_CONFIG
    data: dict[str, Any] = {}
    if file.exists():
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"not valid TOML: {exc}", path=str(file)) from None
        except OSError as exc:
            raise ConfigError(f"cannot read: {exc.strerror}", path=str(file)) from None
    elif required or path is not None:
        raise ConfigError("no such file", path=str(file))
    try:
        settings = Settings(**data, source=file.resolve() if file.exists() else None)
    except SettingsError as exc:
        raise unreadable(exc) from None
    except ValidationError as exc:
        first = exc.errors()[0]
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        env = env_source(first["loc"])
        where = f"environment variable {env}" if env else str(file)
        # pydantic's message never contains the input value here, so no secret leaks.
        raise ConfigError(f"{first['msg'].removeprefix('Value error, ')}{more}", path=where, key=_format_loc(first["loc"])) from None
    log.register_secret(settings.invoiced.api_key.get_secret_value())
    for section in settings.connectors.values():
        log.register_secret_fields(section)  # e.g. a HubSpot token, for `syncd status` too
    return settings
