"""Off a terminal every line the daemon writes to stderr is JSON, and the last one has the exit status."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest

from syncd.daemon import EXIT_CONFIG, EXIT_LOCKED, EXIT_OK
from syncd.daemon.lock import Lease
from syncd.store import Store
from tests.daemon.helpers import DaemonProcess, write_config, write_mapping

pytestmark = pytest.mark.timeout(120)


def _config(make_sandbox: Any, tmp_path: Path, **daemon: Any) -> tuple[Path, str]:
    sb = make_sandbox(customers=4, invoices=8, transactions=4)
    mapping, store = tmp_path / "map.toml", f"sqlite:///{tmp_path / 's.db'}"
    write_mapping(mapping)
    config = write_config(
        tmp_path / "syncd.toml", sb, store=store, out=tmp_path / "out", mapping=mapping, daemon=daemon or None
    )
    return config, store


def _json_lines(daemon: DaemonProcess, code: int) -> list[dict[str, Any]]:
    assert daemon.stderr, daemon.output()
    events = []
    for line in daemon.stderr:
        try:
            events.append(json.loads(line))
        except ValueError:
            pytest.fail(f"a stderr line is not JSON: {line!r}\n{daemon.output()}")
    assert events[-1]["event"] == "daemon.stopped" and events[-1]["exit_code"] == code, events[-1]
    return events


def test_a_clean_stop_ends_with_exit_code_0(make_sandbox: Any, tmp_path: Path) -> None:
    config, _ = _config(make_sandbox, tmp_path)
    daemon = DaemonProcess(config)
    try:
        daemon.started()
        daemon.wait_event("job.run", where=lambda e: e["outcome"] == "ok")
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(30) == EXIT_OK
    finally:
        daemon.kill()
    _json_lines(daemon, EXIT_OK)


def test_a_store_held_by_another_daemon_ends_with_exit_code_4(make_sandbox: Any, tmp_path: Path) -> None:
    config, store = _config(make_sandbox, tmp_path)
    holder = Store.open(store)
    lease = Lease(holder.engine, ttl=60)
    lease.acquire()
    try:
        daemon = DaemonProcess(config)
        assert daemon.wait(30) == EXIT_LOCKED
    finally:
        lease.release()
        holder.close()
    events = _json_lines(daemon, EXIT_LOCKED)
    assert any("another syncd daemon holds this checkpoint store" in str(e.get("reason")) for e in events)


def test_an_unreadable_config_ends_with_exit_code_2(make_sandbox: Any, tmp_path: Path) -> None:
    config, _ = _config(make_sandbox, tmp_path, invoice_every=5)
    daemon = DaemonProcess(config)
    assert daemon.wait(30) == EXIT_CONFIG
    events = _json_lines(daemon, EXIT_CONFIG)
    assert any("daemon.invoice_every" in str(e.get("reason")) for e in events)


def test_a_store_folder_that_does_not_exist_fails_at_once_with_exit_code_2(
    make_sandbox: Any, tmp_path: Path
) -> None:
    # An SQLite store that cannot be created is a configuration error, not an outage to wait out.
    config, _ = _config(make_sandbox, tmp_path, store_unreachable_exit=600)
    text = config.read_text().replace(
        f"sqlite:///{tmp_path / 's.db'}", f"sqlite:///{tmp_path / 'nope' / 's.db'}"
    )
    config.write_text(text)
    daemon = DaemonProcess(config)
    assert daemon.wait(60) == EXIT_CONFIG
    events = _json_lines(daemon, EXIT_CONFIG)
    assert any(
        f"store.url: checkpoint store folder {tmp_path / 'nope'} does not exist" in str(e.get("reason"))
        for e in events
    )
