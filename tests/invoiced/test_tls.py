"""TLS set-up of the API client: the CA bundle is loaded only for an https base URL."""

from __future__ import annotations

import ssl
from typing import Any

import pytest

from syncd.invoiced import InvoicedClient


@pytest.mark.parametrize(
    ("url", "loads_cas"), [("https://api.invoiced.com", True), ("http://127.0.0.1:9", False)]
)
def test_the_ca_bundle_is_loaded_for_https_only(
    url: str, loads_cas: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plain-http server (the sandbox, the benchmark) never gets a TLS handshake: loading
    the CA bundle was a tenth of a start-up."""
    loaded: list[ssl.SSLContext] = []
    real = ssl.SSLContext.load_verify_locations

    def load(self: ssl.SSLContext, *args: Any, **kwargs: Any) -> None:
        loaded.append(self)
        real(self, *args, **kwargs)

    monkeypatch.setattr(ssl.SSLContext, "load_verify_locations", load)
    client = InvoicedClient.connect(url, "sk_test_tls")
    client.close()
    assert bool(loaded) is loads_cas


def test_the_context_of_a_plain_http_client_trusts_no_certificate() -> None:
    """Were it ever used, it would refuse every server (it fails closed)."""
    from syncd.invoiced.client import _tls

    context = _tls("http://127.0.0.1:9")
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.get_ca_certs() == []
    assert _tls("https://api.invoiced.com") is True  # httpx's default: certifi's bundle
