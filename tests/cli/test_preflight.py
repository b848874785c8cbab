"""A configuration that cannot work fails before any request, naming the file and the key, on one line."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from typer.testing import CliRunner

from syncd.cli import app

runner = CliRunner()


class _Counter(BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.hits.append(self.path)
        self.send_response(401)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def counting_server() -> Iterator[tuple[str, list[str]]]:
    hits: ClassVar[list[str]] = []
    handler = type("Handler", (_Counter,), {"hits": hits})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", hits
    server.shutdown()
    server.server_close()


def _config(tmp_path: Path, invoiced: str, store: str | None = None) -> Path:
    config = tmp_path / "syncd.toml"
    store = store or f"sqlite:///{tmp_path / 's.db'}"
    config.write_text(
        f'[invoiced]\n{invoiced}\nretry_budget = 1.0\n[store]\nurl = "{store}"\n'
        f'[connectors.csv]\ndirectory = "{tmp_path / "out"}"\n',
        encoding="utf-8",
    )
    return config


def _one_line_error(output: str) -> str:
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    assert "Traceback" not in output
    return lines[0]


@pytest.mark.parametrize("command", ["sync", "push"])
@pytest.mark.parametrize("key", ['api_key = ""', "", 'api_key = "  "'])
def test_a_missing_api_key_fails_before_any_request(
    counting_server: tuple[str, list[str]], tmp_path: Path, key: str, command: str
) -> None:
    url, hits = counting_server
    config = _config(tmp_path, f'base_url = "{url}"\n{key}')
    result = runner.invoke(app, ["--config", str(config), command], env={"SYNCD_INVOICED__API_KEY": None})
    assert result.exit_code == 2, result.output
    line = _one_line_error(result.output)
    assert f"{config}: invoiced.api_key: " in line and "SYNCD_INVOICED__API_KEY" in line
    assert hits == []


def test_the_key_from_the_environment_is_enough(
    counting_server: tuple[str, list[str]], tmp_path: Path
) -> None:
    url, hits = counting_server
    config = _config(tmp_path, f'base_url = "{url}"')
    result = runner.invoke(
        app, ["--config", str(config), "sync"], env={"SYNCD_INVOICED__API_KEY": "sk_env_1234"}
    )
    assert hits and "invoiced.api_key" not in result.output  # it got as far as asking (and a 401)


@pytest.mark.parametrize(
    ("base_url", "says"),
    [
        ("127.0.0.1:9", "http:// or https://"),  # main retried UnsupportedProtocol for minutes
        ("ftp://127.0.0.1:9", "http:// or https://"),
        ("https://", "http:// or https://"),
        ("http://sk_live_abc:pw@127.0.0.1:9", "must not contain credentials"),
        ("http://sk_live_abc@127.0.0.1:9", "must not contain credentials"),
    ],
)
def test_a_base_url_that_cannot_work_is_refused_naming_the_key(
    tmp_path: Path, base_url: str, says: str
) -> None:
    config = _config(tmp_path, f'base_url = "{base_url}"\napi_key = "sk_live_abc"')
    for command in ("sync", "status"):
        result = runner.invoke(app, ["--config", str(config), command], env={"COLUMNS": "300"})
        assert result.exit_code == 2, result.output
        line = _one_line_error(result.output)
        assert f"{config}: invoiced.base_url: " in line and says in line
        assert "sk_live_abc" not in result.output and ":pw@" not in result.output


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    ("store", "says"),
    [
        ("mysql://syncd@db/syncd", "store.url: must be sqlite:///PATH or postgresql://"),
        ("syncd.db", "store.url: must be sqlite:///PATH or postgresql://"),
        ("postgresql://syncd:hunter2@127.0.0.1:{port}/syncd", "store.url: checkpoint store postgresql"),
    ],
)
def test_store_errors_name_the_key_on_one_line(tmp_path: Path, store: str, says: str) -> None:
    config = _config(
        tmp_path,
        'base_url = "http://127.0.0.1:9"\napi_key = "sk_live_abc"',
        store.format(port=_closed_port()),
    )
    for command in ("sync", "status"):
        result = runner.invoke(app, ["--config", str(config), command], env={"COLUMNS": "300"})
        assert result.exit_code == 2, result.output
        line = _one_line_error(result.output)
        assert says in line
        assert "hunter2" not in result.output


def test_an_unwritable_store_folder_is_a_config_error(tmp_path: Path) -> None:
    config = _config(
        tmp_path, 'base_url = "http://127.0.0.1:9"\napi_key = "sk_live_abc"', "sqlite:///no/such/dir/s.db"
    )
    result = runner.invoke(app, ["--config", str(config), "sync"])
    assert result.exit_code == 2, result.output
    line = _one_line_error(result.output)
    assert f"{config}: store.url: checkpoint store folder {tmp_path / 'no/such/dir'} does not exist" in line
