"""The Invoiced API client: one thread-safe httpx.Client, typed errors, Decimal JSON.

Reads (`get_page`, `iter_pages`, `get`) are retried under the RetryPolicy. A POST makes
one attempt, repeated only when the API certainly did not apply it (a 429, or a connection
that never opened); after a 5xx, a timeout or a broken connection it raises
`RetryableApiError` with `outcome_unknown = True`, and the caller looks up before reposting.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from tenacity import RetryCallState

from syncd import __version__
from syncd.errors import ApiError, FatalApiError, RetryableApiError
from syncd.invoiced.decode import (
    dumps,
    error_fields,
    http_date,
    loads,
    next_link,
    retry_after,
    safe_url,
    total_count,
)
from syncd.invoiced.paging import LinkPaginator
from syncd.invoiced.retry import RetryPolicy
from syncd.log import redact_text, register_secret

_DEFAULT_PORTS = {"http": 80, "https": 443}
# The request surely never reached the server: safe to repeat even for a POST.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass(slots=True)
class Page:
    """One response of a list endpoint."""

    items: list[dict[str, Any]]  # the JSON array; numbers with a fraction are Decimal
    total: int | None  # X-Total-Count
    next_url: str | None  # Link rel="next", absolute
    server_time: int | None  # the response's Date header, unix seconds


@dataclass(slots=True)
class ClientStats:
    """Counters across all threads using one client."""

    requests: int = 0
    retries: int = 0
    throttled: int = 0  # 429s seen
    server_errors: int = 0  # 5xx seen
    transport_errors: int = 0  # timeouts, refused or broken connections
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, counter: str, n: int = 1) -> None:
        """Add `n` to one counter, atomically."""
        with self._lock:
            setattr(self, counter, getattr(self, counter) + n)

    def snapshot(self) -> dict[str, int]:
        """All counters at one instant."""
        with self._lock:
            return {
                "requests": self.requests,
                "retries": self.retries,
                "throttled": self.throttled,
                "server_errors": self.server_errors,
                "transport_errors": self.transport_errors,
            }


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port or _DEFAULT_PORTS.get(url.scheme)


def _retryable(message: str, *, outcome_unknown: bool, **kwargs: Any) -> RetryableApiError:
    exc = RetryableApiError(message, **kwargs)
    # Through vars() so this type-checks both before and after `outcome_unknown` becomes a
    # declared attribute of RetryableApiError (proposed for syncd/errors.py).
    vars(exc)["outcome_unknown"] = outcome_unknown
    return exc


class InvoicedClient:
    """Talks to one Invoiced account; share one instance between threads."""

    def __init__(self, http: httpx.Client, policy: RetryPolicy | None = None) -> None:
        self.http = http
        self.policy = policy or RetryPolicy()
        self.stats = ClientStats()
        # Told (seconds, reason) before every wait between attempts: a live view shows it.
        self.on_wait: Callable[[float, str], None] | None = None
        self._origin = _origin(http.base_url) if http.base_url.host else None

    @classmethod
    def connect(
        cls,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 30.0,
        policy: RetryPolicy | None = None,
        max_connections: int = 16,
    ) -> InvoicedClient:
        """A client for `base_url` with Basic auth (the key as user name, empty password)."""
        register_secret(api_key)
        http = httpx.Client(
            base_url=base_url,
            auth=httpx.BasicAuth(api_key, ""),
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            headers={"Accept": "application/json", "User-Agent": f"syncd/{__version__}"},
        )
        return cls(http, policy)

    def close(self) -> None:
        """Close the connection pool."""
        self.http.close()

    def __enter__(self) -> InvoicedClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reads -------------------------------------------------------------------------------

    def get_page(self, path_or_url: str, params: Mapping[str, str] | None = None) -> Page:
        """One page of a listing: a path with `params`, or a `next_url` as given with None."""
        response, body = self._retried("GET", path_or_url, params=params)
        return self._page(response, body)

    def iter_pages(self, path: str, params: Mapping[str, str]) -> Iterator[Page]:
        """Every page of a listing, following `rel="next"` one page after the other."""
        paginator = LinkPaginator()
        url: str = path
        query: Mapping[str, str] | None = params
        while True:
            response, body = self._retried("GET", url, params=query)
            paginator.advance(response)
            yield self._page(response, body)
            if paginator.next_url is None:
                return
            url, query = paginator.next_url, None

    def get(self, path: str, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        """Retrieve one object."""
        response, body = self._retried("GET", path, params=params)
        if not isinstance(body, dict):
            raise FatalApiError(
                "expected a JSON object",
                status=response.status_code,
                method="GET",
                url=safe_url(response.url),
            )
        return body

    # -- writes ------------------------------------------------------------------------------

    def post(
        self, path: str, data: Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """Create an object from JSON `data` (Decimal stays exact); see the module doc on retries."""
        content = dumps(data)
        headers = {"Content-Type": "application/json"}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        response, body = self._retried("POST", path, content=content, headers=headers)
        if body is None:
            return {}
        if not isinstance(body, dict):
            raise _retryable(
                "expected a JSON object in the answer to a create",
                outcome_unknown=True,
                status=response.status_code,
                method="POST",
                url=safe_url(response.url),
            )
        return body

    # -- plumbing ----------------------------------------------------------------------------

    def _count_retry(self, state: RetryCallState) -> None:
        self.stats.add("retries")
        if self.on_wait is not None:
            status = getattr(state.outcome.exception() if state.outcome else None, "status", None)
            reason = {429: "rate limited", None: "connection failed"}.get(status, f"HTTP {status}")
            self.on_wait(state.upcoming_sleep, reason)

    def _retried(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[httpx.Response, Any]:
        return self.policy.call(
            lambda: self._attempt(method, url, params=params, content=content, headers=headers),
            on_retry=self._count_retry,
        )

    def _check_origin(self, method: str, url: str) -> None:
        # httpx sends the Basic credentials with every request of this client: a Link
        # header pointing at another host must not receive the API key.
        if self._origin is None:
            return
        target = httpx.URL(url)
        if target.is_absolute_url and _origin(target) != self._origin:
            raise FatalApiError(
                f"refusing to send credentials to {target.scheme}://{target.host}: "
                "not the configured Invoiced base URL",
                method=method,
                url=safe_url(target),
            )

    def _attempt(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None,
        content: bytes | None,
        headers: Mapping[str, str] | None,
    ) -> tuple[httpx.Response, Any]:
        """One request; its outcome mapped to typed errors."""
        self._check_origin(method, url)
        unsafe = method != "GET"
        self.stats.add("requests")
        try:
            response = self.http.request(method, url, params=params, content=content, headers=headers)
        except httpx.TransportError as exc:
            self.stats.add("transport_errors")
            try:
                where = safe_url(exc.request.url)
            except RuntimeError:
                where = safe_url(url)
            raise _retryable(
                redact_text(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__),
                outcome_unknown=unsafe and not isinstance(exc, _NOT_SENT),
                method=method,
                url=where,
            ) from exc
        status = response.status_code
        if status < 300:
            return response, self._body(response, method, unsafe)
        raise self._error_for(response, method, unsafe)

    def _body(self, response: httpx.Response, method: str, unsafe: bool) -> Any:
        if not response.content:
            return None
        try:
            return loads(response.content)
        except ValueError as exc:
            # A cut or garbled body: worth another read; for a write the server acted already.
            raise _retryable(
                f"response is not valid JSON ({exc})",
                outcome_unknown=unsafe,
                status=response.status_code,
                method=method,
                url=safe_url(response.url),
            ) from exc

    def _error_for(self, response: httpx.Response, method: str, unsafe: bool) -> ApiError:
        status = response.status_code
        message, kind, param = error_fields(response)
        url = safe_url(response.url)
        if status == 429:
            self.stats.add("throttled")
            return _retryable(
                message,
                outcome_unknown=False,  # a throttled request was not applied
                retry_after=retry_after(response),
                status=status,
                type=kind,
                param=param,
                method=method,
                url=url,
            )
        if status >= 500:
            self.stats.add("server_errors")
            return _retryable(
                message,
                outcome_unknown=unsafe,
                retry_after=retry_after(response),
                status=status,
                type=kind,
                param=param,
                method=method,
                url=url,
            )
        if status < 400:
            message = f"unexpected redirect to {safe_url(response.headers.get('location', '?'))}"
        return FatalApiError(message, status=status, type=kind, param=param, method=method, url=url)

    def _page(self, response: httpx.Response, body: Any) -> Page:
        if body is None:
            body = []
        if not isinstance(body, list):
            raise FatalApiError(
                "expected a JSON array from a list endpoint",
                status=response.status_code,
                method="GET",
                url=safe_url(response.url),
            )
        return Page(
            items=body,
            total=total_count(response),
            next_url=next_link(response),
            server_time=http_date(response.headers.get("date")),
        )
