"""No traceback reaches the user, whatever the input: one line, exit non-zero.

Bad `SYNCD_*` variables, a damaged SQLite store, a full disk under the outputs or the store,
and a bug all end as one `error:` line from the console entry point (`syncd.cli.main`).
"""

from __future__ import annotations

import errno
import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from syncd.cli import main
from syncd.store import Store
from tests.engine.helpers import CSV_MAPPING, ROOT, assert_csv_matches


def _run(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[int, str]:
    """`syncd ARGS` through the console entry point; (exit code, last line of stderr)."""
    monkeypatch.setattr(sys, "argv", ["syncd", *args])
    with pytest.raises(SystemExit) as done:
        main()
    err = capsys.readouterr().err
    assert "Traceback" not in err and "───" not in err, err  # no plain or rich traceback
    lines = err.strip().splitlines()
    return int(done.value.code or 0), lines[-1] if lines else ""


def _config(tmp_path: Path, sandbox: Any = None) -> Path:
    config = tmp_path / "syncd.toml"
    url, key = (sandbox.url, sandbox.api_key) if sandbox else ("http://127.0.0.1:9", "sk_test_failures")
    config.write_text(
        f'[invoiced]\nbase_url = "{url}"\napi_key = "{key}"\nper_page = 10\n'
        f'[store]\nurl = "sqlite:///{tmp_path / "s.db"}"\n'
        f'[connectors.csv]\nenabled = true\ndirectory = "{tmp_path / "out"}"\nmapping = "{CSV_MAPPING}"\n'
        "render_every = 0\n",  # render on every page: a full disk is met mid-run, not only at the end
        encoding="utf-8",
    )
    return config


@pytest.mark.parametrize(
    ("name", "value", "where"),
    [
        (
            "SYNCD_INVOICED__PER_PAGE",
            "abc",
            "environment variable SYNCD_INVOICED__PER_PAGE: invoiced.per_page",
        ),
        ("SYNCD_STREAMS", "garbage", "environment variable SYNCD_STREAMS: cannot be read"),
        ("syncd_streams__customers", "[1,", "environment variable syncd_streams__customers: cannot be read"),
        ("SYNCD_INVOICED", '{"api_key": "sk_in_broken_json', "environment variable SYNCD_INVOICED: cannot"),
        ("SYNCD_LOG_LEVEL", "loud", "environment variable SYNCD_LOG_LEVEL: log_level"),
    ],
)
def test_a_malformed_environment_variable_is_named_on_one_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    value: str,
    where: str,
) -> None:
    monkeypatch.setenv(name, value)
    code, line = _run(capsys, monkeypatch, "--config", str(_config(tmp_path)), "sync")
    assert code == 2
    assert where in line
    assert "sk_in_broken_json" not in line  # the value is never echoed: it may hold the key


def _damage(path: Path, how: str) -> None:
    size = path.stat().st_size
    with path.open("r+b") as fh:
        if how == "garbage":
            fh.write(b"\xde\xad\xbe\xef" * 64)
        elif how == "truncated":
            fh.truncate(size // 3)
        else:  # the raw records' pages overwritten: found only when a query reads them
            for page in _pages(path, "rawrecord"):
                fh.seek(page.start)
                fh.write(b"\xde\xad\xbe\xef" * (len(page) // 4))


def _pages(path: Path, table: str) -> list[range]:
    """The byte ranges of the pages of `table` and its indexes (a sync reads them, wherever
    the file's layout puts them)."""
    with closing(sqlite3.connect(path)) as conn:
        size = conn.execute("PRAGMA page_size").fetchone()[0]
        numbers = conn.execute(
            "SELECT pageno FROM dbstat WHERE name IN (SELECT name FROM sqlite_schema WHERE tbl_name = ?)", (table,)
        ).fetchall()
    return [range((n - 1) * size, n * size) for (n,) in numbers]


@pytest.mark.parametrize(
    ("command", "how"),
    [
        ("sync", "garbage"),
        ("sync", "truncated"),
        ("sync", "middle"),
        ("status", "garbage"),
        ("status", "truncated"),
    ],
)
def test_a_damaged_sqlite_store_is_one_line_naming_the_store(
    make_sandbox: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    how: str,
    command: str,
) -> None:
    sandbox = make_sandbox(customers=10, invoices=120, transactions=30)
    config = _config(tmp_path, sandbox)
    assert _run(capsys, monkeypatch, "--config", str(config), "sync")[0] == 0
    for extra in ("s.db-wal", "s.db-shm"):
        (tmp_path / extra).unlink(missing_ok=True)
    _damage(tmp_path / "s.db", how)
    code, line = _run(capsys, monkeypatch, "--config", str(config), command)
    assert code != 0
    assert line.startswith(("error: checkpoint store", "error: store.url: checkpoint store", "sync failed:")), line
    assert str(tmp_path / "s.db") in line or "checkpoint store" in line
    assert "malformed" in line or "not a database" in line


def _enospc(*_: Any) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


def _state(tmp_path: Path) -> tuple[dict[str, bytes], dict[str, dict[str, int]]]:
    files = {p.name: p.read_bytes() for p in sorted((tmp_path / "out").iterdir())}
    store = Store.open(f"sqlite:///{tmp_path / 's.db'}")
    try:
        cursors = {s: store.cursors(s) for s in ("customers", "invoices", "transactions")}
    finally:
        store.close()
    return files, cursors


def test_a_full_disk_under_the_outputs_keeps_old_files_and_cursors(
    make_sandbox: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox = make_sandbox(customers=6, invoices=30, transactions=8)
    config = _config(tmp_path, sandbox)
    assert _run(capsys, monkeypatch, "--config", str(config), "sync")[0] == 0
    files, cursors = _state(tmp_path)
    invoice = sandbox.data.list("invoices")[3]
    sandbox.data.update("invoices", invoice["id"], {"notes": "written while the disk is full"})

    with monkeypatch.context() as full:
        full.setattr("syncd.files.os.fsync", _enospc)
        code, line = _run(capsys, monkeypatch, "--config", str(config), "sync")
    assert code == 1
    assert "No space left on device" in line and str(tmp_path / "out") in line and ".csv" in line
    after_files, after_cursors = _state(tmp_path)
    assert after_files == files  # old outputs intact, no temp file left behind
    assert after_cursors["invoices"] == cursors["invoices"]  # the changed page was not checkpointed

    assert _run(capsys, monkeypatch, "--config", str(config), "sync")[0] == 0
    assert_csv_matches(sandbox, tmp_path / "out")


def test_a_full_disk_under_the_store_keeps_old_files_and_cursors(
    make_sandbox: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox = make_sandbox(customers=6, invoices=30, transactions=8)
    config = _config(tmp_path, sandbox)
    assert _run(capsys, monkeypatch, "--config", str(config), "sync")[0] == 0
    files, cursors = _state(tmp_path)
    invoice = sandbox.data.list("invoices")[3]
    sandbox.data.update("invoices", invoice["id"], {"notes": "saved while the disk is full"})

    def full(*_: Any) -> None:
        raise OperationalError(
            "INSERT INTO rawrecord ...", {}, sqlite3.OperationalError("database or disk is full")
        )

    with monkeypatch.context() as patch:
        patch.setattr(Store, "save_raw", full)
        code, line = _run(capsys, monkeypatch, "--config", str(config), "sync")
    assert code == 1
    assert line == "sync failed: invoices: checkpoint store: database or disk is full"
    after_files, after_cursors = _state(tmp_path)
    assert after_files == files
    assert after_cursors["invoices"] == cursors["invoices"]  # other streams go on
    assert _run(capsys, monkeypatch, "--config", str(config), "sync")[0] == 0
    assert_csv_matches(sandbox, tmp_path / "out")


def test_a_bug_is_one_line_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: Any, **__: Any) -> None:
        raise KeyError("boom")

    monkeypatch.setattr("syncd.engine.run_sync", broken)
    code, line = _run(capsys, monkeypatch, "--config", str(_config(tmp_path)), "sync")
    assert code == 1
    assert line == "error: unexpected KeyError: 'boom' (a bug: please report it)"


def test_the_real_entry_point_prints_no_traceback_on_a_full_disk(make_sandbox: Any, tmp_path: Path) -> None:
    """As a user runs it: a process whose writes fail with ENOSPC exits 1 with one line."""
    sandbox = make_sandbox(customers=4, invoices=10, transactions=3)
    config = _config(tmp_path, sandbox)
    harness = (
        "import errno, sys, syncd.files\n"
        "def full(*_): raise OSError(errno.ENOSPC, 'No space left on device')\n"
        "syncd.files.os.fsync = full\n"
        "from syncd.cli import main\n"
        f"sys.argv = ['syncd', '--config', {str(config)!r}, 'sync']\n"
        "main()\n"
    )
    env = {**os.environ, "COLUMNS": "500"}
    proc = subprocess.run(
        [sys.executable, "-c", harness],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and "───" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: cannot write ") and last.endswith(": No space left on device")
    assert not list((tmp_path / "out").glob("*.csv")) and not list((tmp_path / "out").glob(".*.tmp"))
