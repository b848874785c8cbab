"""Small helpers for sandbox tests: an authenticated httpx client and Decimal JSON."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import simplejson

from syncd.sandbox import Sandbox


def client(sb: Sandbox, **kwargs: Any) -> httpx.Client:
    """An httpx client for the sandbox, authenticated as the API docs describe."""
    return httpx.Client(base_url=sb.url, auth=(sb.api_key, ""), timeout=10, **kwargs)


def body(response: httpx.Response) -> Any:
    """The response JSON with every fractional number as Decimal."""
    return simplejson.loads(response.text, use_decimal=True)


def assert_error(response: httpx.Response, status: int, param: str | None) -> dict[str, Any]:
    """The documented error body `{type, message, param}` naming `param`."""
    assert response.status_code == status, response.text[:300]
    data = response.json()
    assert set(data) == {"type", "message", "param"}, data
    assert data["type"] in ("invalid_request", "api")
    assert data["message"]
    assert data["param"] == param, data
    return dict(data)


def pages(c: httpx.Client, path: str, params: dict[str, str]) -> list[dict[str, Any]]:
    """Every record of a listing, following rel=next links."""
    out: list[dict[str, Any]] = []
    response = c.get(path, params=params)
    while True:
        assert response.status_code == 200, response.text
        out += body(response)
        nxt = response.links.get("next")
        if not nxt:
            return out
        response = c.get(nxt["url"])


ZERO = Decimal(0)
