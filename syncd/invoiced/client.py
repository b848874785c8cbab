"""The Invoiced API client: one thread-safe httpx.Client, typed errors, Decimal JSON.

Reads (`get_page`, `iter_pages`, `get`) are retried under the RetryPolicy. A POST makes
one attempt, repeated only when the API certainly did not apply it (a 429, or a connection
that never opened); after a 5xx, a timeout or a broken connection it raises
`RetryableApiError` with `outcome_unknown = True`, and the caller looks up before reposting.

Every request of every thread goes through one Pacer (pacing.py): a 429 pauses them all
until its Retry-After and slows the pace, so concurrent walks share the server's allowance.
A 429 uses none of the attempts meant for failures. Each attempt has a total deadline
(`RetryPolicy.request_deadline`): httpx's timeout bounds one socket read, so a body
dripped a byte at a time would otherwise hold a thread forever.
"""

from __future__ import annotations

import math
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from tenacity import RetryCallState

from syncd import __version__
from syncd.errors import ApiError, FatalApiError, RetryableApiError
from syncd.invoiced.contract import MAX_DEPTH
from syncd.invoiced.decode import (
    dumps,
    error_fields,
    http_date,
    loads,
    nesting_depth,
    next_link,
    retry_after,
    safe_url,
    total_count,
)
from syncd.invoiced.pacing import Pacer
from syncd.invoiced.paging import LinkPaginator
from syncd.invoiced.retry import RetryPolicy, is_throttle, log, wait_reason
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
    # How deeply the body nests, read off its bytes (syncd.invoiced.decode.nesting_depth);
    # None when not measured or deeper than the page contract allows.
    depth: int | None = None


@dataclass(slots=True)
class ClientStats:
    """Counters across all threads using one client."""

    requests: int = 0
    retries: int = 0
    throttled: int = 0  # 429s seen
    server_errors: int = 0  # 5xx seen
    transport_errors: int = 0  # timeouts, refused or broken connections, deadlines
    waits: int = 0  # waits before a retry (rate limited or after a failure)
    waited: float = 0.0  # seconds of those waits, summed over threads
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, counter: str, n: float = 1) -> None:
        """Add `n` to one counter, atomically."""
        with self._lock:
            setattr(self, counter, getattr(self, counter) + n)

    def snapshot(self) -> dict[str, float]:
        """All counters at one instant."""
        with self._lock:
            return {
                "requests": self.requests,
                "retries": self.retries,
                "throttled": self.throttled,
                "server_errors": self.server_errors,
                "transport_errors": self.transport_errors,
                "waits": self.waits,
                "waited": round(self.waited, 3),
            }


class _DeadlineExceeded(Exception):
    """An attempt ran past the request deadline."""


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port or _DEFAULT_PORTS.get(url.scheme)


def _tls(base_url: str) -> ssl.SSLContext | bool:
    """httpx's default TLS set-up (the CA bundle: ~40 ms of CPU at every start) for an https
    base URL. A plain-http one never speaks TLS (`_check_origin` keeps every request on its
    scheme, host and port): it gets a bare context, which would refuse any certificate."""
    return True if httpx.URL(base_url).scheme != "http" else ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


def _retryable(message: str, *, outcome_unknown: bool, **kwargs: Any) -> RetryableApiError:
    exc = RetryableApiError(message, **kwargs)
    # Through vars() so this type-checks both before and after `outcome_unknown` becomes a
    # declared attribute of RetryableApiError (proposed for syncd/errors.py).
    vars(exc)["outcome_unknown"] = outcome_unknown
    return exc


@dataclass(slots=True)
class _Call:
    """One call's state across its attempts."""

    waited_until: float = -math.inf  # the end of a pause this call already slept through


class InvoicedClient:
    """Talks to one Invoiced account; share one instance between threads.

    `on_wait(seconds, reason)`, when set, is told before every wait for a retry, e.g.
    `(2.0, "rate limited")` or `(1.5, "server error 503")` (a progress view shows it).
    """

    def __init__(self, http: httpx.Client, policy: RetryPolicy | None = None) -> None:
        self.http = http
        self.policy = policy or RetryPolicy()
        self.pacer: Pacer = self.policy.pacer()
        # The account whose pace this client shares with the account's other processes once
        # a store is attached (syncd.store.pacing.share_pacing); None: paced on its own.
        self.pace_key: str | None = None
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
            verify=_tls(base_url),
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

    def _before_wait(self, retry_state: RetryCallState) -> None:
        """Count, announce and (for rate limits, sparingly) log a wait before a retry."""
        seconds = retry_state.upcoming_sleep
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        reason = wait_reason(exc)
        self.stats.add("retries")
        self.stats.add("waits")
        self.stats.add("waited", seconds)
        # One line per pause of the run, not one per thread and request (api.retry is at
        # debug level for 429s); failures keep their own api.retry warning.
        if is_throttle(exc) and self.pacer.should_log():
            pace = self.pacer.rate
            log.info(
                "api.waiting",
                seconds=round(seconds, 3),
                reason=reason,
                pace=round(pace, 2) if pace is not None else None,
                waited_total=round(self.pacer.limited, 1),
            )
        hook = self.on_wait
        if hook is not None:
            try:
                hook(seconds, reason)
            except Exception as hook_error:  # a display problem must not fail a request
                log.debug("api.on_wait_failed", error=repr(hook_error))

    def _retried(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[httpx.Response, Any]:
        call = _Call()
        return self.policy.call(
            lambda: self._attempt(method, url, params=params, content=content, headers=headers, call=call),
            on_retry=self._before_wait,
            pacer=self.pacer,
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
        call: _Call,
    ) -> tuple[httpx.Response, Any]:
        """One request; its outcome mapped to typed errors."""
        self._check_origin(method, url)
        sent_at = self.pacer.acquire(call.waited_until)
        try:
            return self._sent(
                method, url, params=params, content=content, headers=headers, call=call, sent_at=sent_at
            )
        finally:
            self.pacer.done()  # whatever the outcome: the pacer counts requests in flight

    def _sent(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None,
        content: bytes | None,
        headers: Mapping[str, str] | None,
        call: _Call,
        sent_at: float,
    ) -> tuple[httpx.Response, Any]:
        """The request `_attempt` was cleared to send at `sent_at`."""
        unsafe = method != "GET"
        call.waited_until = -math.inf
        self.stats.add("requests")
        deadline = time.monotonic() + self.policy.request_deadline
        try:
            request = self.http.build_request(method, url, params=params, content=content, headers=headers)
            response = self.http.send(request, stream=True)
            try:
                self._read(response, deadline)
            finally:
                response.close()
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
        except _DeadlineExceeded:
            self.stats.add("transport_errors")
            raise _retryable(
                f"no complete answer within the request deadline ({self.policy.request_deadline:g} s)",
                outcome_unknown=unsafe,  # the server may have acted on a write already
                method=method,
                url=safe_url(request.url),
            ) from None
        status = response.status_code
        if status < 300:
            body = self._body(response, method, unsafe)
            self.pacer.succeeded()
            return response, body
        if status == 429:
            # Without Retry-After the whole client still waits the pause of a first backoff,
            # instead of every thread drawing 429s of its own; only a Retry-After, which says
            # when the server has room again, sets the pace (`Pacer.paused`).
            after = retry_after(response)
            if after is None:
                call.waited_until = self.pacer.paused(self.policy.base)
            else:
                call.waited_until = self.pacer.throttled(sent_at, after)
        raise self._error_for(response, method, unsafe)

    @staticmethod
    def _read(response: httpx.Response, deadline: float) -> None:
        """Read the body, giving up at `deadline` (httpx's timeout bounds each read, not all)."""
        chunks = []
        for chunk in response.iter_bytes():
            chunks.append(chunk)
            if time.monotonic() > deadline:
                raise _DeadlineExceeded
        # What Response.read() does, with the deadline checked between chunks.
        response._content = b"".join(chunks)

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
            depth=nesting_depth(response.content, MAX_DEPTH + 1),
        )
