"""Credentials never reach stderr, the store, `syncd status`, /healthz or /metrics, in any encoding."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote

import pytest
from typer.testing import CliRunner

from syncd import log
from syncd.cli import app
from syncd.store import Store
from tests.daemon.helpers import DaemonProcess, wait_for, write_config, write_mapping

runner = CliRunner()
KEY = "sk_echo_Secret/Key+42"
BASIC = base64.b64encode(f"{KEY}:".encode()).decode()


def leaks(text: str) -> list[str]:
    """The forms of KEY found in `text`."""
    forms = {
        "key": KEY,
        "basic": BASIC.rstrip("="),
        "base64 of key": base64.b64encode(KEY.encode()).decode().rstrip("="),
        "url-encoded": quote(KEY, safe=""),
    }
    return [name for name, form in forms.items() if form in text]


class _Echo(BaseHTTPRequestHandler):
    """A hostile API: every request is refused with a body quoting its Authorization header."""

    def do_GET(self) -> None:
        auth = self.headers.get("Authorization", "")
        body = json.dumps(
            {
                "type": "authentication_error",
                "message": f"credentials {auth.split(' ')[-1]} refused (header was {auth})",
                "param": auth,
            }
        ).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def echo_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_basic_credentials_echoed_by_the_server_reach_no_output_nor_the_store(
    echo_url: str, tmp_path: Path
) -> None:
    db = tmp_path / "s.db"
    config = tmp_path / "syncd.toml"
    config.write_text(
        f'[invoiced]\nbase_url = "{echo_url}"\n[store]\nurl = "sqlite:///{db}"\n'
        f'[connectors.csv]\ndirectory = "{tmp_path / "out"}"\n'
    )
    env = {"SYNCD_INVOICED__API_KEY": KEY}
    result = runner.invoke(app, ["--config", str(config), "sync"], env=env)
    assert result.exit_code == 1, result.output
    assert "401" in result.output and leaks(result.output) == []

    store = Store.open(f"sqlite:///{db}")
    try:
        runs = store.recent_runs(5)
    finally:
        store.close()
    assert runs and runs[0].error and "refused" in runs[0].error
    assert leaks(runs[0].error) == []

    status = runner.invoke(app, ["--config", str(config), "status"], env={**env, "COLUMNS": "400"})
    assert status.exit_code == 0, status.output
    assert "refused" in status.output and leaks(status.output) == []


@pytest.mark.timeout(120)
def test_daemon_against_an_echoing_server_keeps_the_key_out_of_stderr_healthz_and_metrics(
    echo_url: str, tmp_path: Path
) -> None:
    mapping = tmp_path / "map.toml"
    write_mapping(mapping)
    server = SimpleNamespace(url=echo_url, api_key=KEY)
    config = write_config(
        tmp_path / "syncd.toml",
        server,
        store=f"sqlite:///{tmp_path / 's.db'}",
        out=tmp_path / "out",
        mapping=mapping,
    )
    daemon = DaemonProcess(config)
    try:
        daemon.started()
        _, body = wait_for(lambda: (r := daemon.get("/healthz"))[0] == 503 and r, 60, "degraded health")
        assert "refused" in body and leaks(body) == []
        assert leaks(daemon.get("/metrics")[1]) == []
        daemon.wait_event("job.run", where=lambda e: e.get("outcome") == "failed")
    finally:
        daemon.kill()
        daemon.wait(10)
    assert leaks(daemon.output()) == []


def test_encoded_forms_and_auth_headers_are_masked() -> None:
    secret = "sk_forms_Ab/cd+ef"
    log.register_secret(secret)
    texts = {
        f"Authorization: Basic {base64.b64encode(f'{secret}:'.encode()).decode()}": "Authorization: ***",
        f"got {base64.b64encode(secret.encode()).decode()}!": "got ***!",
        f"got {base64.urlsafe_b64encode(f'{secret}:'.encode()).decode()}": "got ***",
        f"url {quote(secret, safe='')} and {quote(secret)}": "url *** and ***",
        # credentials nobody registered: any Basic/Bearer value, any URL password
        "header 'authorization': 'Bearer pat-na1-0f00ba4'": "header 'authorization': '***'",
        "then Bearer pat-na1-0f00ba4 was sent": "then Bearer *** was sent",
        "Basic dXNlcjpwYXNz was refused": "Basic *** was refused",
        "postgresql://syncd:hunter2@db/syncd": "postgresql://syncd:***@db/syncd",
        # words that only look like a scheme stay readable
        "Basic authentication failed": "Basic authentication failed",
    }
    for text, expected in texts.items():
        assert log.redact_text(text) == expected, text
