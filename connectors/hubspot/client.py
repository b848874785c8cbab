"""The HubSpot edge: an httpx client for the CRM v3/v4 endpoints the connector uses.

Endpoints, as documented at developers.hubspot.com (API reference, "legacy" v3 pages):

- batch upsert   POST /crm/v3/objects/{type}/batch/upsert
                 `{"inputs": [{"id": VALUE, "idProperty": NAME, "properties": {..}, "objectWriteTraceId": ..}]}`
                 ("Create or update a batch of companies by unique property values").
- batch read     POST /crm/v3/objects/{type}/batch/read  `{"idProperty": NAME, "inputs": [{"id": VALUE}]}`
- batch archive  POST /crm/v3/objects/{type}/batch/archive  `{"inputs": [{"id": HUBSPOT_ID}]}` (204)
- associations   POST /crm/v4/associations/{from}/{to}/batch/associate/default
                 `{"inputs": [{"from": {"id": ..}, "to": {"id": ..}}]}` ("Associate records", v4)
- account        GET /account-info/v3/details: `companyCurrency`, `additionalCurrencies`
- properties     GET /crm/v3/properties/{type}/{name} (404 when missing), POST /crm/v3/properties/{type}
- errors         docs/api-reference/error-handling: a batch answers 207 Multi-Status with
                 `numErrors` and `errors: [{status, category, message, context: {objectWriteTraceId: [..]}}]`
                 for the inputs that failed (only with `objectWriteTraceId` on the inputs).
- rate limits    docs/api-reference/usage-details: `X-HubSpot-RateLimit-{Max,Remaining,
                 Interval-Milliseconds}` headers; a 429 body names `policyName`
                 (`TEN_SECONDLY_ROLLING`, `DAILY`); no `Retry-After` (honoured if ever sent).

Property values travel as strings (HubSpot's wire format); money is formatted from Decimal
without exponent, so nothing passes through a float.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
import structlog
import tenacity

from connectors.hubspot.pacing import Pacer, header_number
from syncd.errors import ConnectorError
from syncd.invoiced.retry import StopOverBudget, WaitRetryAfter, backoff

log = structlog.get_logger(__name__)

CONNECTOR = "hubspot"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# Statuses that can concern one input of a batch (validation, conflict); 401/403/404 concern them all.
INPUT_STATUSES = frozenset({400, 409, 422})
SPLIT_REQUESTS = 12  # extra requests a whole-batch refusal may cost (halving, resending the rest)


class HubSpotRetryable(ConnectorError):
    """A 429, 5xx or network failure: the same request may succeed later."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message, connector=CONNECTOR)
        self.retry_after = retry_after


class HubSpotError(ConnectorError):
    """HubSpot refused a request as a whole (status and HubSpot's message)."""

    def __init__(self, message: str, *, status: int, body: Mapping[str, Any] | None = None) -> None:
        super().__init__(f"HTTP {status}: {message}", connector=CONNECTOR)
        self.status = status
        self.body = dict(body or {})
        self.message = message


@dataclass
class RetryPolicy:
    """How requests are retried: `Retry-After` when HubSpot sends one, else jittered backoff."""

    attempts: int = 8
    budget: float = 300.0
    initial: float = 1.0
    maximum: float = 60.0
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic  # for the rate-limit window (tests pass a fake)

    def retrying(self) -> tenacity.Retrying:
        """A tenacity Retrying for one request, from the same parts as the Invoiced client's."""
        return tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(HubSpotRetryable),
            wait=WaitRetryAfter(backoff(self.initial, self.maximum)),
            stop=tenacity.stop_after_attempt(self.attempts) | StopOverBudget(self.budget),
            sleep=self.sleep,
            before_sleep=_log_retry,
            reraise=True,
        )


def _log_retry(state: tenacity.RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    wait = state.next_action.sleep if state.next_action else None
    log.warning("hubspot.retry", attempt=state.attempt_number, wait=wait, error=str(exc))


def wire_value(value: Any) -> str:
    """A property value as HubSpot takes it: a string; None clears the property."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, float):  # never produced by syncd; refuse to round silently
        raise TypeError("float property values are not allowed; use Decimal")
    return str(value)


@dataclass
class BatchOutcome:
    """Per-input outcome of a batch: HubSpot ids of those that succeeded, messages of the others."""

    ids: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    # Inputs refused because another object already holds a unique value (e.g. a contact's
    # email): key -> the HubSpot id of that existing object.
    conflicts: dict[str, str] = field(default_factory=dict)


def _retry_after(response: httpx.Response) -> float | None:
    return header_number(response.headers.get("Retry-After"))


def _body(response: httpx.Response) -> dict[str, Any]:
    if not response.content:
        return {}
    try:
        data = json.loads(response.content, parse_float=Decimal)
    except ValueError:
        return {"message": response.text[:200]}
    return data if isinstance(data, dict) else {"results": data}


def error_message(error: Mapping[str, Any]) -> str:
    """HubSpot's message for an error object (with its category when given)."""
    message = str(error.get("message") or "no message")
    category = error.get("category")
    return f"{category}: {message}" if category else message


_EXISTING = re.compile(r"Existing ID:\s*(\d+)")


def _existing_id(error: Mapping[str, Any]) -> str | None:
    """The id of the object that already holds a unique value, from a CONFLICT error."""
    context = error.get("context") or {}
    value = context.get("existingId") if isinstance(context, Mapping) else None
    if isinstance(value, list) and value:
        return str(value[0])
    match = _EXISTING.search(str(error.get("message") or ""))
    return match.group(1) if match else None


def _trace_ids(error: Mapping[str, Any]) -> list[str]:
    context = error.get("context") or {}
    found: list[str] = []
    for source in (context, error):
        if not isinstance(source, Mapping):
            continue
        value = source.get("objectWriteTraceId")
        if isinstance(value, list):
            found.extend(str(v) for v in value)
        elif value is not None:
            found.append(str(value))
    return found


class HubSpotClient:
    """CRM API calls over one httpx client (base URL and Bearer token already set)."""

    def __init__(self, http: httpx.Client, *, policy: RetryPolicy | None = None) -> None:
        self.http = http
        self.policy = policy or RetryPolicy()
        self.pacer = Pacer(self.policy.clock, self.policy.sleep)

    @classmethod
    def connect(
        cls, base_url: str, token: str, *, timeout: float = 30.0, policy: RetryPolicy | None = None
    ) -> HubSpotClient:
        """A client for `base_url` authenticating with a private-app token."""
        http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=timeout,
        )
        return cls(http, policy=policy)

    def close(self) -> None:
        """Close the connection pool."""
        self.http.close()

    # -- transport ----------------------------------------------------------------
    def request(self, method: str, path: str, body: Any = None, *, ok: Iterable[int] = ()) -> httpx.Response:
        """Send with retries on 429/5xx/network; raise HubSpotError on any other non-2xx not in `ok`."""
        accepted = set(ok)

        def once() -> httpx.Response:
            self.pacer.before()
            try:
                response = self.http.request(method, path, json=body)
            except httpx.TransportError as exc:
                raise HubSpotRetryable(f"{method} {path}: {exc.__class__.__name__}") from None
            self.pacer.observe(response.headers)
            if response.status_code in RETRY_STATUSES:
                data = _body(response)
                message = error_message(data)
                if data.get("policyName") == "DAILY":
                    # The daily quota resets at midnight: retrying within this run cannot help.
                    raise HubSpotError(
                        f"{method} {path}: daily API limit reached; syncd stops here and "
                        f"resumes on the next run after the limit resets (midnight, account time zone): "
                        f"{message}",
                        status=429,
                    )
                after = _retry_after(response)
                if response.status_code == 429:
                    self.pacer.remaining = None  # the retry's wait below is the pacing
                    if after is None:
                        # A rolling window (TEN_SECONDLY_ROLLING): wait until a slot of it frees.
                        after = self.pacer.window_wait()
                raise HubSpotRetryable(
                    f"{method} {path}: HTTP {response.status_code}: {message}", retry_after=after
                )
            if response.status_code >= 400 and response.status_code not in accepted:
                data = _body(response)
                raise HubSpotError(
                    f"{method} {path}: {error_message(data)}", status=response.status_code, body=data
                )
            return response

        response: httpx.Response = self.policy.retrying()(once)
        return response

    # -- account ------------------------------------------------------------------
    def account_currencies(self) -> frozenset[str] | None:
        """The account's currencies (company currency and additional ones), uppercase; None
        when the token may not read the account details (the check is then skipped)."""
        response = self.request("GET", "/account-info/v3/details", ok=(403, 404))
        if response.status_code != 200:
            return None
        data = _body(response)
        codes = [data.get("companyCurrency"), *(data.get("additionalCurrencies") or [])]
        return frozenset(str(c).upper() for c in codes if c)

    # -- properties ---------------------------------------------------------------
    def get_property(self, object_type: str, name: str) -> dict[str, Any] | None:
        """The property definition, or None when it does not exist."""
        response = self.request("GET", f"/crm/v3/properties/{object_type}/{name}", ok=(404,))
        return None if response.status_code == 404 else _body(response)

    def create_property(self, object_type: str, definition: Mapping[str, Any]) -> None:
        """Create a property; an existing one (409, e.g. after a lost reply) is fine."""
        self.request("POST", f"/crm/v3/properties/{object_type}", dict(definition), ok=(409,))

    # -- objects ------------------------------------------------------------------
    def batch_upsert(
        self,
        object_type: str,
        id_property: str,
        inputs: Sequence[tuple[str, Mapping[str, Any]]],
        _budget: list[int] | None = None,
    ) -> BatchOutcome:
        """Upsert up to 100 objects keyed on `id_property`; per-input errors are reported, not raised.

        Every input carries `objectWriteTraceId`, so HubSpot answers 207 with an error per
        failing input. A whole-batch 400 (HubSpot validates some inputs before writing any)
        that names its inputs drops them and resends the rest; one that does not is split in
        halves, at most SPLIT_REQUESTS more requests per batch: inputs still not isolated
        then are refused with the batch's message (a common cause, e.g. a currency the
        account lacks, would otherwise cost two requests per input).
        """
        outcome = BatchOutcome()
        if not inputs:
            return outcome
        budget = [SPLIT_REQUESTS] if _budget is None else _budget
        body = {
            "inputs": [
                {
                    "id": key,
                    "idProperty": id_property,
                    "objectWriteTraceId": key,
                    "properties": {
                        id_property: key,
                        **{k: wire_value(v) for k, v in props.items() if k != id_property},
                    },
                }
                for key, props in inputs
            ]
        }
        try:
            response = self.request("POST", f"/crm/v3/objects/{object_type}/batch/upsert", body)
        except HubSpotError as exc:
            if exc.status not in INPUT_STATUSES:
                raise
            message = error_message(exc.body) if exc.body else exc.message
            if len(inputs) == 1:
                outcome.errors[inputs[0][0]] = message
                existing = _existing_id(exc.body)
                if existing is not None:
                    outcome.conflicts[inputs[0][0]] = existing
                return outcome
            named = {t for t in _trace_ids(exc.body) if t in dict(inputs)}
            if named:
                for trace in named:
                    outcome.errors[trace] = message
                parts: list[Sequence[tuple[str, Mapping[str, Any]]]] = [
                    [(k, p) for k, p in inputs if k not in named]
                ]
            else:
                half = len(inputs) // 2
                parts = [inputs[:half], inputs[half:]]
            for part in parts:
                if budget[0] <= 0:
                    for unresolved, _ in part:
                        outcome.errors[unresolved] = (
                            f"{message} (batch refused as a whole; input not isolated)"
                        )
                    continue
                budget[0] -= 1
                sub = self.batch_upsert(object_type, id_property, part, budget)
                outcome.ids.update(sub.ids)
                outcome.errors.update(sub.errors)
                outcome.conflicts.update(sub.conflicts)
            return outcome
        data = _body(response)
        keys = [key for key, _ in inputs]
        for result in data.get("results") or []:
            props = result.get("properties") or {}
            key = props.get(id_property)
            traced = result.get("objectWriteTraceId")
            key = str(traced) if traced is not None else key
            if key is not None and "id" in result:
                outcome.ids[str(key)] = str(result["id"])
        unattributed = []
        for error in data.get("errors") or []:
            traces = [t for t in _trace_ids(error) if t in keys]
            if not traces:
                unattributed.append(error_message(error))
            for trace in traces:
                outcome.errors[trace] = error_message(error)
                existing = _existing_id(error)
                if existing is not None:
                    outcome.conflicts[trace] = existing
        # An input neither confirmed nor named by an error was not written as far as we know.
        for key in keys:
            if key not in outcome.ids and key not in outcome.errors:
                detail = "; ".join(unattributed) or "no result returned for this input"
                outcome.errors[key] = f"not confirmed by HubSpot: {detail}"
        return outcome

    def batch_read_ids(self, object_type: str, id_property: str, keys: Sequence[str]) -> dict[str, str]:
        """HubSpot ids of the objects whose `id_property` is one of `keys` (missing ones left out)."""
        return {
            key: str(props["hs_object_id"])
            for key, props in self.batch_read(object_type, id_property, keys).items()
        }

    def batch_read(
        self, object_type: str, id_property: str, keys: Sequence[str], properties: Sequence[str] = ()
    ) -> dict[str, dict[str, Any]]:
        """`properties` of the objects whose `id_property` is one of `keys`, by key (missing ones
        left out); each also holds its HubSpot id as `hs_object_id`."""
        found: dict[str, dict[str, Any]] = {}
        wanted = [id_property, *(p for p in properties if p != id_property)]
        for chunk in _chunks(list(dict.fromkeys(keys)), 100):
            body = {"idProperty": id_property, "properties": wanted, "inputs": [{"id": key} for key in chunk]}
            response = self.request("POST", f"/crm/v3/objects/{object_type}/batch/read", body)
            for result in _body(response).get("results") or []:
                props = dict(result.get("properties") or {})
                value = props.get(id_property)
                if value is not None and "id" in result:
                    found[str(value)] = {**props, "hs_object_id": str(result["id"])}
        return found

    def read_properties(
        self, object_type: str, ids: Sequence[str], properties: Sequence[str]
    ) -> dict[str, dict[str, Any]]:
        """Properties of objects by HubSpot id (missing ones left out)."""
        found: dict[str, dict[str, Any]] = {}
        for chunk in _chunks(list(dict.fromkeys(ids)), 100):
            body = {"properties": list(properties), "inputs": [{"id": i} for i in chunk]}
            response = self.request("POST", f"/crm/v3/objects/{object_type}/batch/read", body)
            for result in _body(response).get("results") or []:
                if "id" in result:
                    found[str(result["id"])] = dict(result.get("properties") or {})
        return found

    def batch_update(self, object_type: str, inputs: Sequence[tuple[str, Mapping[str, Any]]]) -> BatchOutcome:
        """Update objects by HubSpot id; outcome keyed by that id."""
        outcome = BatchOutcome()
        for chunk in _chunks(list(inputs), 100):
            body = {
                "inputs": [
                    {
                        "id": hs_id,
                        "objectWriteTraceId": hs_id,
                        "properties": {k: wire_value(v) for k, v in props.items()},
                    }
                    for hs_id, props in chunk
                ]
            }
            data = _body(self.request("POST", f"/crm/v3/objects/{object_type}/batch/update", body))
            for result in data.get("results") or []:
                outcome.ids[str(result.get("id"))] = str(result.get("id"))
            for error in data.get("errors") or []:
                for trace in _trace_ids(error):
                    outcome.errors[trace] = error_message(error)
            for hs_id, _ in chunk:
                if hs_id not in outcome.ids and hs_id not in outcome.errors:
                    outcome.errors[hs_id] = "not confirmed by HubSpot"
        return outcome

    def batch_archive(self, object_type: str, ids: Sequence[str]) -> None:
        """Archive objects by HubSpot id (already archived ones are fine)."""
        for chunk in _chunks(list(dict.fromkeys(ids)), 100):
            body = {"inputs": [{"id": i} for i in chunk]}
            self.request("POST", f"/crm/v3/objects/{object_type}/batch/archive", body)

    def associate_default(
        self, from_type: str, to_type: str, pairs: Sequence[tuple[str, str]]
    ) -> dict[str, str]:
        """Create default associations; returns HubSpot's message per `from` id that failed."""
        failed: dict[str, str] = {}
        for chunk in _chunks(list(dict.fromkeys(pairs)), 100):
            body = {"inputs": [{"from": {"id": a}, "to": {"id": b}} for a, b in chunk]}
            response = self.request(
                "POST", f"/crm/v4/associations/{from_type}/{to_type}/batch/associate/default", body
            )
            data = _body(response)
            done = {str((r.get("from") or {}).get("id")) for r in data.get("results") or []}
            messages = "; ".join(error_message(e) for e in data.get("errors") or [])
            if data.get("errors"):
                for a, _ in chunk:
                    if a not in done:
                        failed[a] = messages
        return failed


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
