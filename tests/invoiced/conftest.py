"""Fixtures for the Invoiced client tests: a network guard, a fake API, a recorded sleep."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from syncd.invoiced import InvoicedClient, RetryPolicy

BASE = "https://api.invoiced.test"
KEY = "sk_test_Zr8qSecretKey42"


def _loopback(host: Any) -> bool:
    if host in (None, "localhost"):
        return True
    try:
        return ipaddress.ip_address(str(host)).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any test that would resolve or connect to anything but 127.0.0.1."""
    real_getaddrinfo, real_connect = socket.getaddrinfo, socket.socket.connect

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if not _loopback(host):
            raise OSError(f"test tried to resolve {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    def connect(self: socket.socket, address: Any) -> Any:
        if isinstance(address, tuple) and not _loopback(address[0]):
            raise OSError(f"test tried to connect to {address!r}")
        return real_connect(self, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)


class Sleeps(list[float]):
    """A `sleep=` for RetryPolicy that records the waits instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


Handler = Callable[[httpx.Request], httpx.Response]


@pytest.fixture
def make_client(sleeps: Sleeps) -> Iterator[Callable[..., InvoicedClient]]:
    """Build an InvoicedClient over an in-process handler (httpx.MockTransport)."""
    made: list[InvoicedClient] = []

    def make(handler: Handler, **policy: Any) -> InvoicedClient:
        http = httpx.Client(base_url=BASE, auth=(KEY, ""), transport=httpx.MockTransport(handler))
        client = InvoicedClient(http, RetryPolicy(**{"sleep": sleeps, **policy}))
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    """A response with a JSON body given as text (so that numbers keep their exact spelling)."""
    content = body if isinstance(body, str) else httpx.Response(200, json=body).text
    return httpx.Response(
        status, content=content.encode(), headers={"Content-Type": "application/json", **(headers or {})}
    )


class Script:
    """A handler that answers from a list of responses (or exceptions) in order, recording requests."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer
