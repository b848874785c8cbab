"""A loopback HubSpot stand-in: the CRM v3/v4 endpoints the connector uses, in memory.

It follows HubSpot's documented shapes (batch upsert/read/archive, v4 default
associations, properties, 207 multi-status with `context.objectWriteTraceId`, 429) and
enforces what matters for the tests: Bearer auth, unique id properties, at most 100 inputs.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOKEN = "pat-na1-test-token"
OBJECT_TYPES = ("companies", "contacts", "deals")
Rejecter = Callable[[str, dict[str, str]], str | None]


@dataclass
class FakeHubSpot:
    """State of the stand-in; mutate knobs between requests."""

    token: str = TOKEN
    properties: dict[str, dict[str, dict[str, Any]]] = field(
        default_factory=lambda: {t: {} for t in OBJECT_TYPES}
    )
    objects: dict[str, dict[str, dict[str, Any]]] = field(
        default_factory=lambda: {t: {} for t in OBJECT_TYPES}
    )
    associations: set[tuple[str, str, str, str]] = field(default_factory=set)
    requests: list[tuple[str, str, Any]] = field(default_factory=list)
    fail_429: int = 0  # answer this many next requests with 429
    limit_policy: str = "TEN_SECONDLY_ROLLING"  # the rate limit a 429 names (DAILY: no retry helps today)
    # The rolling window: at most `window_max` requests per `window` seconds of `clock`.
    window_max: int = 190
    window: float = 10.0
    clock: Callable[[], float] = time.monotonic
    seen: deque[float] = field(default_factory=deque)  # request times in the window
    limited: int = 0  # 429s answered
    reject: Rejecter | None = None  # per-input validation: message -> that input fails
    reject_whole_batch: bool = False  # a rejected input fails the whole batch with 400 (as HubSpot may)
    name_refused_input: bool = False  # that 400 names the input in context.objectWriteTraceId
    currencies: tuple[str, ...] = ("USD", "EUR", "GBP", "JPY", "CAD", "AUD")  # company currency first
    lose_replies: int = 0  # apply this many next writes, then drop the connection instead of replying
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1001))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add_unique_properties(self) -> None:
        """Define the unique id properties syncd needs, as an admin would."""
        for object_type, name in (
            ("companies", "invoiced_customer_id"),
            ("contacts", "invoiced_customer_id"),
            ("deals", "invoiced_invoice_id"),
        ):
            self.properties[object_type][name] = {"name": name, "type": "string", "hasUniqueValue": True}

    def live(self, object_type: str) -> list[dict[str, Any]]:
        """Objects of a type that are not archived."""
        return [o for o in self.objects[object_type].values() if not o["archived"]]

    def by_key(self, object_type: str, prop: str) -> dict[str, dict[str, Any]]:
        """Live objects by the value of a property; fails on a duplicate value."""
        found: dict[str, dict[str, Any]] = {}
        for obj in self.live(object_type):
            value = obj["properties"].get(prop)
            assert value not in found, f"duplicate {object_type} with {prop}={value}"
            found[value] = obj
        return found

    def associated(self, from_type: str, from_id: str, to_type: str) -> set[str]:
        """HubSpot ids of `to_type` objects associated with one object."""
        return {
            t for (ft, f, tt, t) in self.associations if ft == from_type and f == from_id and tt == to_type
        }

    def calls(self, method: str, pattern: str) -> list[Any]:
        """Bodies of the requests whose path matches `pattern` (a regex)."""
        return [body for m, p, body in self.requests if m == method and re.fullmatch(pattern, p)]

    # -- request handling -------------------------------------------------------------
    def handle(self, method: str, path: str, auth: str | None, body: Any) -> tuple[int, dict[str, str], Any]:
        with self._lock:
            self.requests.append((method, path, body))
            if auth != f"Bearer {self.token}":
                return 401, {}, _error("Authentication credentials not found.", "INVALID_AUTHENTICATION")
            now = self.clock()
            while self.seen and self.seen[0] <= now - self.window:
                self.seen.popleft()
            if self.fail_429 > 0 or len(self.seen) >= self.window_max:
                self.fail_429 = max(self.fail_429 - 1, 0)
                self.limited += 1
                return 429, self._limit_headers(), self._limit_body()
            self.seen.append(now)
            status, headers, payload = self._route(method, path, body)
            headers = {**self._limit_headers(), **headers}
            if self.lose_replies > 0 and method == "POST" and status < 400:
                self.lose_replies -= 1
                return -1, {}, None  # the write is applied; its reply never arrives
            return status, headers, payload

    def _limit_headers(self) -> dict[str, str]:
        # developers.hubspot.com/docs/api/usage-details: on every response, no Retry-After
        return {
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(self.window * 1000)),
            "X-HubSpot-RateLimit-Max": str(self.window_max),
            "X-HubSpot-RateLimit-Remaining": str(max(self.window_max - len(self.seen), 0)),
        }

    def _limit_body(self) -> dict[str, Any]:
        return {
            "status": "error",
            "message": f"You have reached your {self.limit_policy.lower()} limit.",
            "errorType": "RATE_LIMIT",
            "correlationId": "00000000-test",
            "policyName": self.limit_policy,
            "groupName": "publicapi:private-app",
        }

    def _route(self, method: str, path: str, body: Any) -> tuple[int, dict[str, str], Any]:
        if path == "/account-info/v3/details":
            return (
                200,
                {},
                {
                    "portalId": 1234567,
                    "accountType": "STANDARD",
                    "timeZone": "US/Eastern",
                    "companyCurrency": self.currencies[0],
                    "additionalCurrencies": list(self.currencies[1:]),
                    "utcOffset": "-05:00",
                    "utcOffsetMilliseconds": -18000000,
                    "uiDomain": "app.hubspot.com",
                    "dataHostingLocation": "na1",
                },
            )
        if m := re.fullmatch(r"/crm/v3/properties/(\w+)/(\w+)", path):
            if method != "GET":
                return 405, {}, _error("method not allowed")
            prop = self.properties.get(m[1], {}).get(m[2])
            if prop is None:
                return 404, {}, _error(f"Unable to find property {m[2]} for {m[1]}", "OBJECT_NOT_FOUND")
            return 200, {}, prop
        if m := re.fullmatch(r"/crm/v3/properties/(\w+)", path):
            name = body.get("name")
            if name in self.properties[m[1]]:
                return 409, {}, _error(f"A property named '{name}' already exists.", "OBJECT_ALREADY_EXISTS")
            self.properties[m[1]][name] = dict(body)
            return 201, {}, dict(body)
        if m := re.fullmatch(r"/crm/v3/objects/(\w+)/batch/(upsert|update|read|archive)", path):
            object_type, verb = m[1], m[2]
            inputs = body.get("inputs") or []
            if len(inputs) > 100:
                return 400, {}, _error("Too many inputs: at most 100", "VALIDATION_ERROR")
            return getattr(self, f"_{verb}")(object_type, body, inputs)  # type: ignore[no-any-return]
        if m := re.fullmatch(r"/crm/v4/associations/(\w+)/(\w+)/batch/associate/default", path):
            results, errors = [], []
            for item in body.get("inputs") or []:
                a, b = str(item["from"]["id"]), str(item["to"]["id"])
                gone = [(t, i) for t, i in ((m[1], a), (m[2], b)) if not self._exists(t, i)]
                if gone:  # documented: an error per input naming the missing object
                    errors.append(
                        {
                            "status": "error",
                            "category": "VALIDATION_ERROR",
                            "subCategory": "crm.associations.INVALID_OBJECT_IDS",
                            "message": f"No {gone[0][0]} with id {gone[0][1]}",
                            "context": {"fromObjectId": [a], "toObjectId": [b]},
                        }
                    )
                    continue
                self.associations.add((m[1], a, m[2], b))
                results.append({"from": {"id": a}, "to": {"id": b}, "associationSpec": {}})
            out: dict[str, Any] = {"status": "COMPLETE", "results": results}
            if errors:
                out.update(numErrors=len(errors), errors=errors)
            return (207 if errors else 200), {}, out
        return 404, {}, _error(f"no route {method} {path}")

    def _exists(self, object_type: str, hs_id: str) -> bool:
        obj = self.objects.get(object_type, {}).get(hs_id)
        return obj is not None and not obj["archived"]

    def _unique(self, object_type: str, prop: str) -> bool:
        return bool(self.properties[object_type].get(prop, {}).get("hasUniqueValue"))

    def _upsert(self, object_type: str, body: Any, inputs: list[Any]) -> tuple[int, dict[str, str], Any]:
        results, errors = [], []
        for item in inputs:
            prop = item.get("idProperty")
            if not prop or not self._unique(object_type, prop):
                return 400, {}, _error(f"idProperty {prop!r} is not a unique property", "VALIDATION_ERROR")
        ids = [str(item.get("id")) for item in inputs]
        if len(set(ids)) != len(ids):
            return 400, {}, _error("Duplicate IDs found in batch input", "VALIDATION_ERROR")
        for item in inputs:
            props = {k: str(v) for k, v in (item.get("properties") or {}).items()}
            unknown = [
                k for k in props if k not in self.properties[object_type] and k not in _BUILTIN[object_type]
            ]
            message = f'Property "{unknown[0]}" does not exist' if unknown else None
            if message is None:
                message = _invalid_value(object_type, props)
            if message is None and self.reject is not None:
                message = self.reject(object_type, props)
            trace = item.get("objectWriteTraceId")
            if message is not None:
                # Documented: without objectWriteTraceId HubSpot cannot say which input failed,
                # so the whole batch fails (207 Multi-Status needs the trace ids).
                if self.reject_whole_batch or trace is None:
                    refusal = _error(f"Property values were not valid: {message}", "VALIDATION_ERROR")
                    if self.name_refused_input and trace is not None:
                        refusal["context"] = {"objectWriteTraceId": [trace]}
                    return 400, {}, refusal
                errors.append(
                    {
                        "status": "error",
                        "category": "VALIDATION_ERROR",
                        "message": f"Property values were not valid: {message}",
                        "context": {"objectWriteTraceId": [trace]},
                    }
                )
                continue
            prop, value = item["idProperty"], str(item["id"])
            existing = self.by_key(object_type, prop).get(value)
            holder = self._email_holder(object_type, props, existing)
            if holder is not None:  # HubSpot keeps contact emails unique
                if self.reject_whole_batch:
                    return 409, {}, _error(f"Contact already exists. Existing ID: {holder}", "CONFLICT")
                errors.append(
                    {
                        "status": "error",
                        "category": "CONFLICT",
                        "message": f"Contact already exists. Existing ID: {holder}",
                        "context": {"objectWriteTraceId": [trace], "existingId": [holder]},
                    }
                )
                continue
            if existing is None:
                hs_id = str(next(self._ids))
                existing = {"id": hs_id, "properties": {}, "archived": False, "new": True}
                self.objects[object_type][hs_id] = existing
            else:
                existing["new"] = False
            existing["properties"].update(props)
            existing["properties"][prop] = value
            results.append(
                {
                    "id": existing["id"],
                    "new": existing["new"],
                    "properties": dict(existing["properties"]),
                    "objectWriteTraceId": trace,
                    "archived": False,
                }
            )
        out: dict[str, Any] = {"status": "COMPLETE", "results": results}
        if errors:
            out.update(numErrors=len(errors), errors=errors)
        return (207 if errors else 200), {}, out

    def _email_holder(
        self, object_type: str, props: dict[str, str], target: dict[str, Any] | None
    ) -> str | None:
        email = props.get("email")
        if object_type != "contacts" or not email:
            return None
        for obj in self.live("contacts"):
            if obj is not target and obj["properties"].get("email") == email:
                return str(obj["id"])
        return None

    def add_object(self, object_type: str, properties: dict[str, str]) -> str:
        """An object created in HubSpot by someone else (e.g. sales); returns its id."""
        hs_id = str(next(self._ids))
        self.objects[object_type][hs_id] = {"id": hs_id, "properties": dict(properties), "archived": False}
        return hs_id

    def _update(self, object_type: str, body: Any, inputs: list[Any]) -> tuple[int, dict[str, str], Any]:
        results, errors = [], []
        for item in inputs:
            obj = self.objects[object_type].get(str(item["id"]))
            props = {k: str(v) for k, v in (item.get("properties") or {}).items()}
            if obj is None or obj["archived"]:
                errors.append(
                    {
                        "status": "error",
                        "category": "OBJECT_NOT_FOUND",
                        "message": "Object not found",
                        "context": {"objectWriteTraceId": [item.get("objectWriteTraceId")]},
                    }
                )
                continue
            obj["properties"].update(props)
            results.append({"id": obj["id"], "properties": dict(obj["properties"]), "archived": False})
        out: dict[str, Any] = {"status": "COMPLETE", "results": results}
        if errors:
            out.update(numErrors=len(errors), errors=errors)
        return (207 if errors else 200), {}, out

    def _read(self, object_type: str, body: Any, inputs: list[Any]) -> tuple[int, dict[str, str], Any]:
        prop = body.get("idProperty")
        results, missing = [], []
        if prop:
            index = self.by_key(object_type, prop)
        for item in inputs:
            value = str(item["id"])
            obj = index.get(value) if prop else self.objects[object_type].get(value)
            if obj is None or obj["archived"]:
                missing.append(value)
            else:
                results.append({"id": obj["id"], "properties": dict(obj["properties"]), "archived": False})
        out: dict[str, Any] = {"status": "COMPLETE", "results": results}
        if missing:
            out.update(
                numErrors=1,
                errors=[
                    {
                        "status": "error",
                        "category": "OBJECT_NOT_FOUND",
                        "message": "Could not get some "
                        f"{object_type} objects, they may be deleted or not exist.",
                        "context": {"ids": missing},
                    }
                ],
            )
        return (207 if missing else 200), {}, out

    def _archive(self, object_type: str, body: Any, inputs: list[Any]) -> tuple[int, dict[str, str], Any]:
        for item in inputs:
            obj = self.objects[object_type].get(str(item["id"]))
            if obj is not None:
                obj["archived"] = True
        return 204, {}, None


_BUILTIN = {
    "companies": {
        "name",
        "phone",
        "address",
        "address2",
        "city",
        "state",
        "zip",
        "country",
        "description",
        "domain",
    },
    "contacts": {"email", "firstname", "lastname", "phone", "company"},
    "deals": {
        "dealname",
        "amount",
        "closedate",
        "deal_currency_code",
        "pipeline",
        "dealstage",
        "description",
    },
}


_DATETIME = {"deals": {"closedate"}}
_NUMBER = {"deals": {"amount"}}
_DECIMAL = re.compile(r"-?\d+(\.\d+)?")  # plain notation: no exponent, no thousands separator
_ISO_DATETIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:?\d\d)")


def _invalid_value(object_type: str, props: dict[str, str]) -> str | None:
    """HubSpot's property value validation, for the values the tests touch (datetimes, numbers)."""
    for name in _DATETIME.get(object_type, ()):
        value = props.get(name)
        if value and not (value.isdigit() or _ISO_DATETIME.fullmatch(value)):
            return f"{value} was not a valid long (epoch ms) or ISO 8601 datetime for property {name}"
    for name in _NUMBER.get(object_type, ()):
        value = props.get(name)
        if value and not _DECIMAL.fullmatch(value):
            return f"{value} was not a valid number for property {name}"
    return None


def _error(message: str, category: str = "VALIDATION_ERROR") -> dict[str, Any]:
    return {"status": "error", "message": message, "category": category, "correlationId": "00000000-test"}


def _handler(fake: FakeHubSpot) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        wbufsize = 1 << 16  # one write per reply: no Nagle/delayed-ACK stall between header and body

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            status, headers, payload = fake.handle(
                self.command, self.path.split("?")[0], self.headers.get("Authorization"), body
            )
            if status < 0:  # a lost reply: the connection drops after the write was applied
                self.close_connection = True
                self.connection.shutdown(2)
                return
            data = b"" if payload is None else json.dumps(payload).encode()
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            if payload is not None:
                self.send_header("Content-Type", "application/json;charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def serve(fake: FakeHubSpot) -> Iterator[str]:
    """Serve `fake` on a free loopback port; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
