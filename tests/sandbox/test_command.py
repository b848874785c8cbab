"""`python -m syncd.sandbox` serves in the foreground, prints its banner, and stops on SIGTERM."""

from __future__ import annotations

import re
import signal
import subprocess
import sys

import httpx


def test_module_serves_and_stops_on_sigterm() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "syncd.sandbox",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--seed",
            "5",
            "--customers",
            "3",
            "--invoices",
            "20",
            "--transactions",
            "5",
            "--strict-pages",
            "--p429",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()
        match = re.fullmatch(r"syncd sandbox: serving (http://127\.0\.0\.1:\d+) api_key=(\S+)\n", banner)
        assert match, banner
        url, key = match.groups()
        r = httpx.get(f"{url}/invoices", auth=(key, ""), params={"per_page": "5"})
        assert r.status_code == 200 and r.headers["X-Total-Count"] == "20"
        assert (
            httpx.get(f"{url}/invoices", auth=(key, ""), params={"page": "3"}).status_code == 400
        )  # strict pages
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.stderr is not None
    assert key not in proc.stderr.read()


def test_cli_registers_the_same_command() -> None:
    from typer.testing import CliRunner

    from syncd.cli import app

    result = CliRunner().invoke(app, ["sandbox", "--help"])
    assert result.exit_code == 0
    for option in (
        "--seed",
        "--invoices",
        "--latency",
        "--p429",
        "--p500",
        "--rate-limit",
        "--strict-pages",
        "--edit-rate",
    ):
        assert option in result.output


def test_busy_port_is_a_one_line_error_naming_it() -> None:
    import socket

    import structlog
    from typer.testing import CliRunner

    from syncd.cli import app

    saved = structlog.get_config()  # the command configures logging for its process; keep ours
    try:
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            port = busy.getsockname()[1]
            result = CliRunner().invoke(
                app,
                [
                    "sandbox",
                    "--port",
                    str(port),
                    "--invoices",
                    "3",
                    "--customers",
                    "1",
                    "--transactions",
                    "0",
                ],
            )
    finally:
        structlog.configure(**saved)
    assert result.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.output
