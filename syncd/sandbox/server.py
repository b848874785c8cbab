"""The sandbox's HTTP server: routes, auth, paging headers, idempotency and fault knobs.

One `ThreadingHTTPServer` with HTTP/1.1 keep-alive; every request runs in its own thread
against the shared, locked `SandboxData`. Faults are applied in the order a real edge
would: latency, auth, dropped connection, rate limit, random 429/500, then the request;
`p_drop_after` closes the connection after a write was applied (the lost response).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import math
import random
import re
import socket
import sys
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import structlog

from syncd.sandbox.config import Knobs, SandboxConfig, Stats, TokenBucket, retry_after_header
from syncd.sandbox.data import EXPANDABLE, STREAMS, SandboxData, dumps, parse_list_query
from syncd.sandbox.model import ApiProblem, bad

log = structlog.get_logger("syncd.sandbox")

STRICT_WINDOW = 60.0  # seconds page N-1 stays valid for asking page N
_FORM_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_MAX_BODY = 10 * 1024 * 1024


class _ShortBody(Exception):
    """The request body ended before its Content-Length: the client is gone."""


class _Drop(Exception):
    """Close the connection without answering."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def parse_form(body: str) -> dict[str, Any]:
    """Form encoding with nested keys: `items[0][name]=x`, `metadata[rep]=Jan`, `taxes[]=1`."""
    root: dict[str, Any] = {}
    for key, value in parse_qsl(body, keep_blank_values=True, strict_parsing=False):
        match = _FORM_KEY.match(key)
        if not match:
            raise bad(key[:60], f"malformed form field name {key[:60]!r}")
        parts = [match.group(1), *re.findall(r"\[([^\[\]]*)\]", match.group(2))]
        node: Any = root
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if part == "":
                if not last or not isinstance(node, list):
                    raise bad(key[:60], f"unsupported form field name {key[:60]!r}")
                node.append(value)
                break
            if not isinstance(node, dict):
                raise bad(key[:60], f"conflicting form fields for {key[:60]!r}")
            if last:
                if part in node:
                    raise bad(key[:60], f"form field {key[:60]!r} given twice")
                node[part] = value
            else:
                child = node.get(part)
                if child is None:
                    child = node[part] = [] if parts[i + 1] == "" else {}
                node = child
    return root


def parse_body(content_type: str, raw: bytes) -> tuple[Any, bool]:
    """(fields, is_form) from a JSON or form-encoded body; 400 when it cannot be read."""
    if not raw.strip():
        return {}, False
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise bad("body", "the request body is not UTF-8") from None
    if "json" in content_type or (not content_type and text.lstrip().startswith("{")):
        try:
            value = json.loads(text, parse_float=Decimal, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as exc:
            raise bad("body", f"malformed JSON: {str(exc)[:200]}") from None
        if not isinstance(value, dict):
            raise bad("body", "the JSON body must be an object")
        return value, False
    return parse_form(text), True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], app: Sandbox) -> None:
        self.app = app
        self.connections: set[socket.socket] = set()
        self.conn_lock = threading.Lock()
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that vanished (killed, timed out) is routine here, not a traceback."""
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "InvoicedSandbox/1.0"
    wbufsize = 64 * 1024  # headers and body leave in one write
    timeout = 120  # idle keep-alive connections close after this
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.conn_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.conn_lock:
            self.server.connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default stderr access log."""

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_HEAD(self) -> None:
        self._handle("HEAD")

    def do_OPTIONS(self) -> None:
        self._handle("OPTIONS")

    def _handle(self, method: str) -> None:
        app = self.server.app
        try:
            raw = self._read_body()
        except ApiProblem as problem:
            self.close_connection = True
            self._send(problem.status, dumps(problem.body()))
            return
        except _ShortBody:
            # The client went away mid-request (killed): like a real server, apply nothing
            # and remember nothing under its Idempotency-Key.
            self.close_connection = True
            return
        split = urlsplit(self.path)
        path = "/" + "/".join(p for p in split.path.split("/") if p)
        try:
            status, headers, body = app.respond(method, path, split.query, self.headers, raw, self._origin())
        except _Drop:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self._send(status, body, headers)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            raise ApiProblem(411, "chunked request bodies are not supported; send Content-Length", "body")
        length_text = self.headers.get("Content-Length") or "0"
        try:
            length = int(length_text)
        except ValueError:
            raise ApiProblem(400, "bad Content-Length", "Content-Length") from None
        if length < 0 or length > _MAX_BODY:
            raise ApiProblem(413, "request body too large", "body")
        body = self.rfile.read(length) if length else b""
        if len(body) < length:
            raise _ShortBody
        return body

    def _origin(self) -> str:
        host = self.headers.get("Host")
        return f"http://{host}" if host else self.server.app.url

    def _send(self, status: int, body: bytes | None, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if status != 204:
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body or b"")))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if status != 204 and body and self.command != "HEAD":
            self.wfile.write(body)


class Account:
    """One Invoiced account of the sandbox: its data and key, and its own fault knobs, rate-limit
    bucket, idempotency memory, strict-paging memory and request stats (Invoiced rate-limits
    per account, so one account's burst never spends another's tokens)."""

    def __init__(
        self, name: str, api_key: str, seed: int, config: SandboxConfig, data: SandboxData, totals: Stats
    ) -> None:
        self.name = name
        self.api_key = api_key
        self.seed = seed
        self.data = data
        self.knobs = Knobs.from_config(config)
        self.stats = Stats(parent=totals)
        self._bucket = TokenBucket(self.knobs)
        self._rng = random.Random(seed ^ 0x5EED)
        self._rng_lock = threading.Lock()
        self._pages: dict[tuple[Any, ...], float] = {}
        self._pages_lock = threading.Lock()
        self._idempotent: dict[str, tuple[str, str, int, dict[str, str], bytes]] = {}
        self._edit_rng = random.Random(seed * 31 + 1)  # the background editor's
        self._edit_carry = 0.0

    def __repr__(self) -> str:  # never the key
        return f"<sandbox account {self.name}>"

    def _chance(self, p: float) -> bool:
        if p <= 0:
            return False
        with self._rng_lock:
            return self._rng.random() < p

    def respond(
        self, method: str, path: str, query: str, headers: Any, raw: bytes, origin: str
    ) -> tuple[int, dict[str, str], bytes | None]:
        """Answer one authenticated request: (status, extra headers, body). Raises _Drop."""
        knobs = self.knobs
        self.stats.request(method, path)
        if self._chance(knobs.p_drop):
            self.stats.add("dropped")
            raise _Drop
        wait = self._bucket.take()
        if wait is not None:
            self.stats.add("served_429")
            problem = ApiProblem(429, "too many requests: slow down", type="api")
            return 429, {"Retry-After": retry_after_header(wait)}, dumps(problem.body())
        if self._chance(knobs.p429):
            self.stats.add("served_429")
            return 429, {}, dumps(ApiProblem(429, "too many requests (sandbox p429)", type="api").body())
        if self._chance(knobs.p500):
            self.stats.add("served_500")
            return (
                500,
                {},
                dumps(ApiProblem(500, "there was a problem on our end (sandbox p500)", type="api").body()),
            )
        honoured = method in ("POST", "PATCH") and knobs.honour_idempotency
        idem = headers.get("Idempotency-Key") if honoured else None
        try:
            if idem:
                status, extra, body = self._idempotent_write(idem, method, path, query, headers, raw, origin)
            else:
                status, extra, body = self._route(method, path, query, headers, raw, origin)
        except ApiProblem as problem:
            return problem.status, {}, dumps(problem.body())
        except Exception:  # a sandbox bug must still answer with the documented body
            log.exception("sandbox.internal_error", method=method, path=path)
            return 500, {}, dumps(ApiProblem(500, "internal sandbox error", type="api").body())
        if method in ("POST", "PATCH", "DELETE") and 200 <= status < 300 and self._chance(knobs.p_drop_after):
            self.stats.add("dropped")
            raise _Drop
        return status, extra, body

    def _idempotent_write(
        self, idem: str, method: str, path: str, query: str, headers: Any, raw: bytes, origin: str
    ) -> tuple[int, dict[str, str], bytes | None]:
        # The data lock spans look-up, apply and remember, so two concurrent repeats apply once.
        with self.data.lock:
            seen = self._idempotent.get(idem)
            if seen is not None:
                if (seen[0], seen[1]) != (method, path):
                    raise bad(
                        "Idempotency-Key", f"Idempotency-Key {idem[:60]!r} was used for {seen[0]} {seen[1]}"
                    )
                return seen[2], {**seen[3], "Idempotent-Replayed": "true"}, seen[4]
            try:
                status, extra, body = self._route(method, path, query, headers, raw, origin)
            except ApiProblem as problem:
                status, extra, body = problem.status, {}, dumps(problem.body())
            self._idempotent[idem] = (method, path, status, extra, body or b"")
            return status, extra, body

    def _route(
        self, method: str, path: str, query: str, headers: Any, raw: bytes, origin: str
    ) -> tuple[int, dict[str, str], bytes | None]:
        parts = path.strip("/").split("/") if path != "/" else []
        stream = parts[0] if parts else ""
        if stream not in (*STREAMS, "events") or len(parts) > 3:
            raise ApiProblem(404, f"unknown endpoint: {method} {path}")
        params = parse_qsl(query, keep_blank_values=True)
        if len(parts) == 1:
            if method == "GET":
                return self._list(stream, path, params, origin)
            if method == "POST" and stream != "events":
                fields, form = parse_body(headers.get("Content-Type", ""), raw)
                return 201, {}, dumps(self.data.create(stream, fields, form=form))
        elif len(parts) == 2:
            oid = _object_id(stream, parts[1])
            if method == "GET":
                expand = frozenset(v for name, value in params if name == "expand" for v in value.split(","))
                return 200, {}, self.data.retrieve(stream, oid, expand & EXPANDABLE[stream])
            if method == "PATCH" and stream != "events":
                fields, form = parse_body(headers.get("Content-Type", ""), raw)
                return 200, {}, dumps(self.data.update(stream, oid, fields, form=form))
            if method == "DELETE" and stream != "events":
                self.data.delete(stream, oid)
                return 204, {}, None
        elif stream == "invoices" and parts[2] == "void" and method == "POST":
            return 200, {}, dumps(self.data.void_invoice(_object_id(stream, parts[1])))
        else:
            raise ApiProblem(404, f"unknown endpoint: {method} {path}")
        raise ApiProblem(405, f"{method} is not allowed on {path}")

    def _list(
        self, stream: str, path: str, params: list[tuple[str, str]], origin: str
    ) -> tuple[int, dict[str, str], bytes]:
        q = parse_list_query(stream, params)
        if stream == "events" and self.knobs.events_retention is not None:
            # An account keeps its events for a limited time (tests shorten it).
            self.data.drop_events_before(self.data.clock() - self.knobs.events_retention)
        if self.knobs.strict_pages:
            self._check_sequential(path, params, q.page, q.per_page)
        total, blobs = self.data.query(stream, q)
        if self.knobs.strict_pages:
            with self._pages_lock:
                self._pages[(path, _query_key(params, q.per_page), q.page)] = time.monotonic()
        headers = {
            "Link": _links(origin + path, params, q.page, q.per_page, total),
            "X-Total-Count": str(total),
        }
        return 200, headers, b"[" + b",".join(blobs) + b"]"

    def _check_sequential(self, path: str, params: list[tuple[str, str]], page: int, per_page: int) -> None:
        if page <= 1:
            return
        now = time.monotonic()
        with self._pages_lock:
            if len(self._pages) > 10_000:
                self._pages = {k: t for k, t in self._pages.items() if now - t < STRICT_WINDOW}
            served = self._pages.get((path, _query_key(params, per_page), page - 1))
        if served is None or now - served > STRICT_WINDOW:
            raise bad(
                "page",
                f"pages must be fetched in order: page {page - 1} of this query was not fetched in the last {STRICT_WINDOW:.0f} s",
            )

    # -- the concurrent editor -----------------------------------------------------------------

    def edit_tick(self, tick: float) -> None:
        """The background editor's share of one tick: `edit_rate * tick` edits, carried over."""
        rate = self.knobs.edit_rate
        if rate <= 0:
            self._edit_carry = 0.0
            return
        self._edit_carry += rate * tick
        burst, self._edit_carry = int(self._edit_carry), self._edit_carry - int(self._edit_carry)
        for _ in range(burst):  # a burst: many edits within the same second
            try:
                if self._edit_once(self._edit_rng):
                    self.stats.add("edits")
            except ApiProblem:
                continue
            except Exception:  # the editor must keep running
                log.exception("sandbox.edit_failed", account=self.name)

    def edit(self, rng: random.Random) -> bool:
        """One random edit of the kind the background editor makes (tests tie edits to requests)."""
        try:
            return self._edit_once(rng)
        except ApiProblem:  # e.g. deleting an invoice that has transactions
            return False

    def _edit_once(self, rng: random.Random) -> bool:
        data = self.data
        roll = rng.random()
        if roll < 0.5:
            for oid in data.random_ids("invoices", rng.randrange, 1):
                change: dict[str, Any] = {"notes": f"edited {rng.randrange(10**6)}"}
                if rng.random() < 0.3:
                    meta = (data.get("invoices", oid) or {}).get("metadata", {})
                    change = {"metadata": {**meta, "edit": str(rng.randrange(1000))}}
                    if len(change["metadata"]) > 10:
                        change = {"metadata": {"edit": str(rng.randrange(1000))}}
                data.update("invoices", oid, change)
                return True
        elif roll < 0.65:
            for oid in data.random_ids("customers", rng.randrange, 1):
                data.update("customers", oid, {"name": f"Customer {oid} rev {rng.randrange(1000)}"})
                return True
        elif roll < 0.72:
            for oid in data.random_ids("transactions", rng.randrange, 1):
                data.update("transactions", oid, {"notes": f"reconciled {rng.randrange(1000)}"})
                return True
        elif roll < 0.84:
            for cid in data.random_ids("customers", rng.randrange, 1):
                qty = rng.randrange(1, 5)
                data.create(
                    "invoices",
                    {"customer": cid, "items": [{"name": "Edit service", "quantity": qty, "unit_cost": 100}]},
                )
                return True
        elif roll < 0.90:
            for oid in data.random_ids("invoices", rng.randrange, 1):
                inv = data.get("invoices", oid)
                if (
                    inv
                    and inv["balance"] > 0
                    and inv["status"] not in ("draft", "voided")
                    and not inv["closed"]
                ):
                    data.create(
                        "transactions",
                        {"invoice": oid, "type": "payment", "method": "check", "amount": inv["balance"]},
                    )
                    return True
        elif roll < 0.95:
            for oid in data.random_ids("transactions", rng.randrange, 1):
                data.delete("transactions", oid)
                return True
        else:
            for oid in data.random_ids("invoices", rng.randrange, 1):
                data.delete("invoices", oid)  # refused (400) when it has transactions
                return True
        return False


class Sandbox:
    """A local Invoiced-compatible API; `start()` serves it from a background thread.

    It serves `config.accounts` accounts on one port, each found by its API key (a dict
    look-up per request). Account i (0-based) is named `acct{i+1:02d}` and is seeded with
    `seed + i`, so it holds the same data and key as a one-account sandbox of that seed.
    `data`, `api_key` and `knobs` are the first account's; `stats` counts every request the
    server received (unknown keys included), `accounts[name].stats` one account's.
    """

    def __init__(self, config: SandboxConfig | None = None, data: SandboxData | None = None) -> None:
        self.config = config or SandboxConfig()
        cfg = self.config
        if cfg.accounts < 1:
            raise ValueError("a sandbox serves at least one account")
        self.stats = Stats()
        self.accounts: dict[str, Account] = {}
        for i in range(cfg.accounts):
            seed = cfg.seed + i
            own = (data if i == 0 else None) or SandboxData.seeded(
                seed, cfg.customers, cfg.invoices, cfg.transactions
            )
            account = Account(cfg.account_name(i), cfg.key(i), seed, cfg, own, self.stats)
            self.accounts[account.name] = account
        self._by_key = {account.api_key: account for account in self.accounts.values()}
        if len(self._by_key) != len(self.accounts):
            raise ValueError("two sandbox accounts have the same API key")
        self._first = next(iter(self.accounts.values()))
        self.url = ""
        self.sleep: Callable[[float], None] = time.sleep  # the latency knob's sleep (tests record it)
        self._server: _Server | None = None
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()

    @property
    def data(self) -> SandboxData:
        """The first account's data."""
        return self._first.data

    @property
    def api_key(self) -> str:
        """The first account's API key."""
        return self._first.api_key

    @property
    def knobs(self) -> Knobs:
        """The first account's fault knobs."""
        return self._first.knobs

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on host:port (0 = a free port) from background threads; returns the base URL."""
        if self._server is not None:
            return self.url
        self._server = _Server((host, port), self)
        shown = host if host not in ("", "0.0.0.0") else "127.0.0.1"  # noqa: S104 - comparing, not binding
        self.url = f"http://{shown}:{self._server.server_port}"
        self._stopping.clear()
        serve = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="sandbox-http", daemon=True
        )
        edits = threading.Thread(target=self._edit_loop, name="sandbox-edits", daemon=True)
        self._threads = [serve, edits]
        for thread in self._threads:
            thread.start()
        log.info("sandbox.started", url=self.url, accounts=len(self.accounts))
        return self.url

    def stop(self) -> None:
        """Stop serving and close every open connection."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        with server.conn_lock:
            for conn in list(server.connections):
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
        server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        log.info("sandbox.stopped", url=self.url)

    def __enter__(self) -> Sandbox:
        if self._server is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- one request -----------------------------------------------------------------------------

    def respond(
        self, method: str, path: str, query: str, headers: Any, raw: bytes, origin: str
    ) -> tuple[int, dict[str, str], bytes | None]:
        """Answer one request: (status, extra headers, body). Raises _Drop to close unanswered."""
        account = self._authenticate(headers.get("Authorization"))
        # Latency comes first, as at a real edge; an unknown key waits the first account's.
        latency = (account or self._first).knobs.latency
        if latency > 0:
            self.sleep(latency)
        if account is None:
            self.stats.request(method, path)
            problem = ApiProblem(
                401, "invalid API key: use HTTP Basic with the API key as user name and an empty password"
            )
            return 401, {"WWW-Authenticate": 'Basic realm="Invoiced"'}, dumps(problem.body())
        return account.respond(method, path, query, headers, raw, origin)

    def _authenticate(self, header: str | None) -> Account | None:
        if not header or not header.startswith("Basic "):
            return None
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        user, colon, password = decoded.partition(":")
        return self._by_key.get(user) if colon and password == "" else None

    # -- the concurrent editor -----------------------------------------------------------------

    def _edit_loop(self) -> None:
        tick = 0.2
        accounts = list(self.accounts.values())

        def editing() -> bool:
            return any(account.knobs.edit_rate > 0 for account in accounts)

        while not self._stopping.wait(tick if editing() else 0.05):
            for account in accounts:
                account.edit_tick(tick)

    def edit(self, rng: random.Random) -> bool:
        """One random edit of the first account (see `Account.edit`)."""
        return self._first.edit(rng)


def _object_id(stream: str, text: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise ApiProblem(404, f"No such {stream[:-1]}: {text[:40]}")
    return int(text)


def _query_key(params: list[tuple[str, str]], per_page: int) -> tuple[tuple[str, str], ...]:
    """The identity of a query for strict paging: its parameters minus page (per_page normalised)."""
    return tuple(
        sorted([(k, v) for k, v in params if k not in ("page", "per_page")] + [("per_page", str(per_page))])
    )


def _links(base: str, params: list[tuple[str, str]], page: int, per_page: int, total: int) -> str:
    """The Link header: self, first, previous, next, last; absolute, commas escaped."""
    last = max(1, math.ceil(total / per_page))
    keep = [(k, v) for k, v in params if k not in ("page", "per_page")]

    def url(n: int) -> str:
        return base + "?" + urlencode([*keep, ("page", str(n)), ("per_page", str(per_page))])

    rels: list[tuple[str, int]] = [("self", page), ("first", 1)]
    if page > 1:
        rels.append(("previous", min(page - 1, last)))
    if page < last:
        rels.append(("next", page + 1))
    rels.append(("last", last))
    return ", ".join(f'<{url(n)}>; rel="{rel}"' for rel, n in rels)


def banner(sandbox: Sandbox) -> str:
    """What the foreground server prints once it listens (benchmarks read URL and keys from it).

    One account: `syncd sandbox: serving URL api_key=KEY`. Several: `syncd sandbox: serving
    URL accounts=N`, then one `syncd sandbox: account NAME api_key=KEY` line per account.
    """
    if len(sandbox.accounts) == 1:
        return f"syncd sandbox: serving {sandbox.url} api_key={sandbox.api_key}"
    lines = [f"syncd sandbox: serving {sandbox.url} accounts={len(sandbox.accounts)}"]
    lines += [f"syncd sandbox: account {a.name} api_key={a.api_key}" for a in sandbox.accounts.values()]
    return "\n".join(lines)
