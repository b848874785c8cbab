"""A hostile Invoiced: the sandbox behind an httpx.MockTransport that breaks chosen responses."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx

from syncd.invoiced import InvoicedClient, RetryPolicy

# (the request, the sandbox's body) -> a new body, or None to pass it on
Tamper = Callable[[httpx.Request, bytes], bytes | None]


class Hostile:
    """Forwards every request to `sandbox` and lets `tamper` rewrite the body of a GET."""

    def __init__(
        self,
        sandbox: Any,
        tamper: Tamper | None = None,
        date: Callable[[httpx.Request], str | None] | None = None,
    ) -> None:
        self.sandbox = sandbox
        self.tamper = tamper
        self.date = date  # a Date header to send instead of the sandbox's, or None
        self.upstream = httpx.Client()
        self.passed: dict[str, list[list[Any]]] = {}  # list bodies passed on unchanged, per path
        self.originals: list[list[Any]] = []  # bodies before they were rewritten

    def handle(self, request: httpx.Request) -> httpx.Response:
        forwarded = httpx.Request(
            request.method, request.url, headers=request.headers, content=request.content
        )
        upstream = self.upstream.send(forwarded)
        body = upstream.content
        headers = {
            k: v
            for k, v in upstream.headers.items()
            if k.lower() not in ("content-length", "content-encoding")
        }
        path = request.url.path
        forged = self.date(request) if self.date else None
        if forged is not None:
            headers["date"] = forged
        if request.method == "GET":
            changed = self.tamper(request, body) if self.tamper and upstream.status_code == 200 else None
            if changed is not None:
                self.originals.append(json.loads(body))
                body = changed
            elif upstream.status_code == 200 and body.startswith(b"["):
                self.passed.setdefault(path, []).append(json.loads(body))
        return httpx.Response(upstream.status_code, headers=headers, content=body)

    def client(self) -> InvoicedClient:
        """An InvoicedClient that talks to the sandbox through this transport (one retry, no waiting)."""
        http = httpx.Client(
            base_url=self.sandbox.url,
            auth=(self.sandbox.api_key, ""),
            transport=httpx.MockTransport(self.handle),
        )
        return InvoicedClient(http, RetryPolicy(attempts=2, sleep=lambda _: None))

    def close(self) -> None:
        self.upstream.close()


def listing(request: httpx.Request) -> bool:
    """A page of a stream's incremental walk (not the one-record date-window planning request)."""
    return request.url.params.get("per_page") != "1" and request.url.path != "/events"


def rewrite_item(path: str, nth: int, position: int, change: Callable[[dict[str, Any]], Any]) -> Tamper:
    """Replace item `position` (0-based) of the `nth` (1-based) listing page of `path` by `change(item)`."""
    pages = [0]

    def tamper(request: httpx.Request, body: bytes) -> bytes | None:
        if request.url.path != path or not listing(request):
            return None
        pages[0] += 1
        if pages[0] != nth:
            return None
        items = json.loads(body)
        items[position] = change(items[position])
        return json.dumps(items).encode()

    return tamper
