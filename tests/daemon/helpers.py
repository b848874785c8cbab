"""Run `python -m syncd.cli --config X daemon` as a subprocess and watch it."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]

MAPPING = """\
[tables.customers]
stream = "customers"

[[tables.customers.fields]]
name = "id"
from = "id"

[[tables.customers.fields]]
name = "{name_column}"
from = "name"

[tables.invoices]
stream = "invoices"

[[tables.invoices.fields]]
name = "id"
from = "id"

[[tables.invoices.fields]]
name = "total"
from = "total"
"""


def write_mapping(path: Path, name_column: str = "name") -> None:
    path.write_text(MAPPING.format(name_column=name_column), encoding="utf-8")


def write_config(
    path: Path,
    sandbox: Any,
    *,
    store: str,
    out: Path,
    mapping: Path,
    daemon: dict[str, Any] | None = None,
    pushback: bool = False,
    inbox: Path | None = None,
    timeout: float = 5.0,
) -> Path:
    """A daemon config for `sandbox` with 1-second schedules and an ephemeral health port."""
    conf: dict[str, Any] = {
        "customers_every": 1,
        "invoices_every": 1,
        "transactions_every": 1,
        "pushback_every": 1,
        "health_port": 0,
        "lock_ttl": 5,
        "failures_degraded": 2,
        "store_unreachable_exit": 5,
        **(daemon or {}),
    }
    lines = [
        "[invoiced]",
        f'base_url = "{sandbox.url}"',
        f'api_key = "{sandbox.api_key}"',
        "retry_attempts = 2",
        "retry_budget = 3.0",
        f"timeout = {timeout}",
        "[store]",
        f'url = "{store}"',
        "[streams.invoices]",
        "windows = 1",
        "[streams.transactions]",
        "windows = 1",
        "[connectors.csv]",
        "enabled = true",
        f'directory = "{out}"',
        f'mapping = "{mapping}"',
        "render_every = 0.0",
    ]
    if inbox is not None:
        lines.append(f'inbox = "{inbox}"')
    lines += ["[pushback]", f"enabled = {'true' if pushback else 'false'}", "[daemon]"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in conf.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


class DaemonProcess:
    """A daemon subprocess; its JSON log events are collected as they arrive."""

    STARTED = "daemon.started"  # the event that carries the health port

    def __init__(self, config: Path, args: list[str] | None = None, env: dict[str, str] | None = None) -> None:
        """`syncd --config CONFIG daemon`, or `syncd ARGS`; `env`: the default is this
        process's environment without SYNCD_* variables."""
        if env is None:
            env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}
            env["PYTHONUNBUFFERED"] = "1"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "syncd.cli", *(args or ["--config", str(config), "daemon"])],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.events: list[dict[str, Any]] = []
        self.text: list[str] = []
        self.stderr: list[str] = []  # stderr's lines alone, in order
        self._cond = threading.Condition()
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stderr,), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True),
        ]
        for reader in self._readers:
            reader.start()
        self.port: int | None = None

    def _read(self, stream: Any) -> None:
        for line in stream:
            with self._cond:
                self.text.append(line)
                if stream is self.proc.stderr:
                    self.stderr.append(line)
                try:
                    event = json.loads(line)
                except ValueError:
                    event = None
                if isinstance(event, dict):
                    self.events.append(event)
                self._cond.notify_all()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        with self._cond:
            return "".join(self.text)

    def wait_event(
        self,
        name: str,
        timeout: float = 60.0,
        where: Callable[[dict[str, Any]], bool] | None = None,
        after: int = 0,
    ) -> dict[str, Any]:
        """The first event called `name` (from index `after`) matching `where`."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for event in self.events[after:]:
                    if event.get("event") == name and (where is None or where(event)):
                        return event
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._alive_readers()):
                    raise AssertionError(f"no {name!r} event; output:\n{''.join(self.text)[-4000:]}")
                self._cond.wait(min(left, 0.2))

    def _alive_readers(self) -> bool:
        return any(r.is_alive() for r in self._readers)

    def mark(self) -> int:
        with self._cond:
            return len(self.events)

    def started(self, timeout: float = 60.0) -> Self:
        event = self.wait_event(self.STARTED, timeout)
        self.port = int(event["health_port"])
        return self

    def get(self, path: str) -> tuple[int, str]:
        assert self.port is not None
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def metrics(self) -> dict[str, float]:
        """Samples of /metrics by their full series name, labels sorted, e.g. `syncd_up` or
        `x{account="default",stream="invoices"}` (read by prometheus_client's parser)."""
        status, body = self.get("/metrics")
        assert status == 200
        samples = {}
        for family in text_string_to_metric_families(body):
            for sample in family.samples:
                tag = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
                samples[f"{sample.name}{{{tag}}}" if tag else sample.name] = sample.value
        return samples

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        code = self.proc.wait(timeout)
        for reader in self._readers:
            reader.join(5)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll `check` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (OSError, AssertionError, ValueError) as exc:  # a file mid-rename, a refused connection
            last = exc
        else:
            if last:
                return last
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def read_csv(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.reader(fh))
