"""The loopback HTTP endpoint: `/healthz` and `/metrics` (stdlib http.server in a thread)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import structlog

from syncd.daemon.metrics import CONTENT_TYPE as METRICS_TYPE
from syncd.log import redact_text

log = structlog.get_logger(__name__)

# () -> (healthy, reasons when degraded, warnings shown even when healthy)
HealthCheck = Callable[[], tuple[bool, list[str], list[str]]]


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def _send(self, status: int, body: str, content_type: str = "text/plain; charset=utf-8") -> None:
        # The endpoint needs no credentials: nothing it serves may carry one.
        data = redact_text(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        try:
            if path == "/healthz":
                healthy, reasons, warnings = self.server.health()
                extra = "".join(f"warning: {w}\n" for w in warnings)
                if healthy:
                    self._send(200, "ok\n" + extra)
                else:
                    self._send(503, "degraded: " + "; ".join(reasons) + "\n" + extra)
            elif path == "/metrics":
                self._send(200, self.server.metrics(), METRICS_TYPE)
            else:
                self._send(404, "not found: try /healthz or /metrics\n")
        except Exception as exc:  # a scrape must never take the daemon down
            log.error("health.error", path=path, error=f"{exc.__class__.__name__}: {exc}")
            self._send(500, "internal error\n")

    do_HEAD = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        # Scrapes every few seconds would drown the job events; keep them at debug.
        log.debug("health.request", line=format % args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], health: HealthCheck, metrics: Callable[[], str]) -> None:
        self.health = health
        self.metrics = metrics
        super().__init__(address, _Handler)


class HealthServer:
    """Serves /healthz and /metrics on a background thread until `close()`."""

    def __init__(self, host: str, port: int, health: HealthCheck, metrics: Callable[[], str]) -> None:
        self._server = _Server((host, port), health, metrics)  # OSError when the port is taken
        self.host = host
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, name="health", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()
