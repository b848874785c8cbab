"""One error tree for syncd, grouped by what the caller should do.

    SyncdError
    ├── ConfigError(path, key)                  fix the configuration, then restart
    ├── MappingError(file, line, column, field)   fix the mapping file
    ├── StoreError                               the checkpoint store is unusable
    ├── ApiError(status, type, message, param)   Invoiced answered with an error
    │   ├── RetryableApiError(retry_after)       429, 5xx, network: try again later
    │   └── FatalApiError                        401/403/404/400: retrying will not help
    ├── ConnectorError(connector, record_id)     a connector failed; record goes to dead letters
    └── PaymentError(external_id, reason)        a payment cannot be pushed as given

Messages never include credentials: the API key and tokens are not part of any error.
"""

from __future__ import annotations


class SyncdError(Exception):
    """Root of every error syncd raises on purpose."""


class ConfigError(SyncdError):
    """The configuration is invalid; names the file and the key."""

    def __init__(self, message: str, *, path: str | None = None, key: str | None = None) -> None:
        self.path, self.key, self.reason = path, key, message
        where = ": ".join(part for part in (path, key) if part)
        super().__init__(f"{where}: {message}" if where else message)


class MappingError(SyncdError):
    """A mapping file is invalid; names file, line, column and field."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        column: int | None = None,
        field: str | None = None,
    ) -> None:
        self.file, self.line, self.column, self.field, self.reason = file, line, column, field, message
        self.errors: list[MappingError] = []  # every error of the file, when raised for a whole file
        where = file or "<mapping>"
        if line is not None:
            where += f":{line}" + (f":{column}" if column is not None else "")
        super().__init__(f"{where}: {message}")


class StoreError(SyncdError):
    """The checkpoint store cannot be used (unreachable, wrong schema version)."""


class ApiError(SyncdError):
    """Invoiced answered with an error body `{type, message, param}`."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        type: str | None = None,
        param: str | None = None,
        method: str | None = None,
        url: str | None = None,
    ) -> None:
        self.status, self.type, self.message, self.param = status, type, message, param
        self.method, self.url = method, url
        parts = [f"HTTP {status}" if status is not None else "network error"]
        if method and url:
            parts.append(f"{method} {url}")
        text = f"{' '.join(parts)}: {message}"
        if param:
            text += f" (param: {param})"
        super().__init__(text)


class RetryableApiError(ApiError):
    """A 429, 5xx or transport failure: the same request may succeed later.

    `outcome_unknown` is True when a write may have been applied before it failed
    (5xx, timeout, broken connection): look it up before sending it again.
    """

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        outcome_unknown: bool = False,
        **kwargs: object,
    ) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.retry_after = retry_after
        self.outcome_unknown = outcome_unknown


class FatalApiError(ApiError):
    """A 4xx other than 429: retrying the same request will not help."""


class ConnectorError(SyncdError):
    """A connector could not deliver; names the connector and, when known, the record."""

    def __init__(self, message: str, *, connector: str, record_id: str | None = None) -> None:
        self.connector, self.record_id, self.reason = connector, record_id, message
        where = connector + (f" record {record_id}" if record_id else "")
        super().__init__(f"{where}: {message}")


class PaymentError(SyncdError):
    """An external payment cannot be pushed as given."""

    def __init__(self, message: str, *, external_id: str | None = None) -> None:
        self.external_id, self.reason = external_id, message
        super().__init__(f"payment {external_id}: {message}" if external_id else message)
