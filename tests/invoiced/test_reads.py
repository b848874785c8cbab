"""Reads: Link following, X-Total-Count, Date, Decimal money, typed errors, credential guard."""

from __future__ import annotations

import threading
from decimal import Decimal

import httpx
import pytest

from syncd.errors import FatalApiError
from syncd.invoiced import InvoicedClient, PaginationLoopError

from .conftest import BASE, KEY, Script, json_response


class FakeList:
    """A list endpoint over in-memory records, paged like Invoiced (Link + X-Total-Count)."""

    def __init__(self, n: int) -> None:
        self.records = [{"id": i, "total": f"{i}.10"} for i in range(1, n + 1)]
        self.requests: list[httpx.Request] = []
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.requests.append(request)
        q = request.url.params
        number, per = int(q.get("page", "1")), int(q.get("per_page", "100"))
        chunk = self.records[(number - 1) * per : number * per]
        url = request.url.copy_remove_param("page")
        links = [f'<{url.copy_add_param("page", "1")}>; rel="first"']
        if number * per < len(self.records):
            links.append(f'<{url.copy_add_param("page", str(number + 1))}>; rel="next"')
        body = "[" + ",".join(f'{{"id": {r["id"]}, "total": {r["total"]}}}' for r in chunk) + "]"
        return json_response(
            200,
            body,
            {
                "Link": ", ".join(links),
                "X-Total-Count": str(len(self.records)),
                "Date": "Mon, 23 Nov 2026 07:00:00 GMT",
            },
        )


def test_iter_pages_follows_next_links_in_order(make_client) -> None:
    fake = FakeList(250)
    client = make_client(fake)
    pages = list(client.iter_pages("/invoices", {"per_page": "100", "sort": "updated_at asc"}))
    assert [len(p.items) for p in pages] == [100, 100, 50]
    assert [r["id"] for p in pages for r in p.items] == list(range(1, 251))
    assert [r.url.params.get("page") for r in fake.requests] == [None, "2", "3"]
    # The scope params ride along in the next links, untouched.
    assert all(r.url.params["sort"] == "updated_at asc" for r in fake.requests)
    assert pages[-1].next_url is None
    assert client.stats.requests == 3


def test_page_carries_total_next_url_and_server_time(make_client) -> None:
    client = make_client(FakeList(150))
    page = client.get_page("/customers", {"per_page": "100"})
    assert page.total == 150
    assert page.next_url == f"{BASE}/customers?per_page=100&page=2"
    assert page.server_time == 1795417200  # 2026-11-23T07:00:00Z
    # A next_url is passed as given, without params.
    second = client.get_page(page.next_url, None)
    assert [r["id"] for r in second.items] == list(range(101, 151))
    assert second.next_url is None


def test_money_is_decimal_and_exact(make_client) -> None:
    body = '[{"id": 1, "amount": 0.1, "balance": 0.2, "total": 51.15, "quantity": 3}]'
    client = make_client(lambda _: json_response(200, body))
    item = client.get_page("/invoices", None).items[0]
    assert item["amount"] + item["balance"] == Decimal("0.3")
    assert isinstance(item["total"], Decimal)
    assert str(item["total"]) == "51.15"
    assert item["quantity"] == 3
    assert isinstance(item["quantity"], int)


def test_get_returns_one_object_with_decimals(make_client) -> None:
    script = Script(json_response(200, '{"id": 46225, "object": "invoice", "balance": 51.15}'))
    client = make_client(script)
    invoice = client.get("/invoices/46225")
    assert invoice == {"id": 46225, "object": "invoice", "balance": Decimal("51.15")}
    assert script.requests[0].url == f"{BASE}/invoices/46225"


def test_requests_carry_basic_auth_with_empty_password(make_client) -> None:
    script = Script(json_response(200, "[]"))
    make_client(script).get_page("/customers", None)
    assert script.requests[0].headers["authorization"] == httpx.BasicAuth(KEY, "")._auth_header


@pytest.mark.parametrize(
    ("status", "body", "kind", "param"),
    [
        (
            400,
            '{"type": "invalid_request", "message": "Invalid per_page", "param": "per_page"}',
            "invalid_request",
            "per_page",
        ),
        (401, '{"type": "invalid_request", "message": "Invalid API key"}', "invalid_request", None),
        (403, '{"type": "invalid_request", "message": "Forbidden"}', "invalid_request", None),
        (
            404,
            '{"type": "invalid_request", "message": "No such invoice: 9", "param": "id"}',
            "invalid_request",
            "id",
        ),
    ],
)
def test_4xx_is_fatal_typed_and_not_retried(make_client, sleeps, status, body, kind, param) -> None:
    script = Script(json_response(status, body))
    client = make_client(script)
    with pytest.raises(FatalApiError) as info:
        client.get("/invoices/9", {"expand": "customer"})
    err = info.value
    assert (err.status, err.type, err.param, err.method) == (status, kind, param, "GET")
    assert err.url == f"{BASE}/invoices/9?expand=customer"
    assert err.message in body
    assert f"HTTP {status}" in str(err)
    assert len(script.requests) == 1
    assert sleeps == []


def test_error_body_that_is_not_json_still_gives_a_typed_error(make_client) -> None:
    client = make_client(Script(httpx.Response(404, text="<html>Not here</html>")))
    with pytest.raises(FatalApiError) as info:
        client.get("/invoices/9")
    assert info.value.status == 404
    assert "Not here" in info.value.message
    assert info.value.type is None


def test_list_endpoint_answering_an_object_is_an_error(make_client) -> None:
    client = make_client(Script(json_response(200, '{"id": 1}')))
    with pytest.raises(FatalApiError, match="JSON array"):
        client.get_page("/invoices", None)


def test_next_link_to_another_host_never_gets_the_key(make_client) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return json_response(200, '[{"id": 1}]', {"Link": '<https://evil.example/steal?page=2>; rel="next"'})

    client = make_client(handler)
    pages = client.iter_pages("/customers", {})
    next(pages)
    with pytest.raises(FatalApiError, match=r"refusing to send credentials to https://evil\.example"):
        next(pages)
    assert seen == [f"{BASE}/customers"]


def test_iter_pages_stops_on_a_link_loop(make_client) -> None:
    client = make_client(
        lambda _: json_response(200, "[]", {"Link": f'<{BASE}/customers?page=1>; rel="next"'})
    )
    pages = client.iter_pages("/customers", {"page": "1"})
    with pytest.raises(PaginationLoopError):
        list(pages)


def test_connect_configures_auth_pool_and_headers() -> None:
    client = InvoicedClient.connect("http://127.0.0.1:9", KEY, timeout=7.0, max_connections=3)
    try:
        assert client.http.timeout.read == 7.0
        assert client.http.auth is not None
        request = client.http.build_request("GET", "/customers")
        assert str(request.url) == "http://127.0.0.1:9/customers"
        assert request.headers["accept"] == "application/json"
        pool = client.http._transport._pool  # type: ignore[attr-defined]
        assert pool._max_connections == 3
        assert pool._max_keepalive_connections == 3
    finally:
        client.close()
