"""`syncd store compact`: a SQLite store gives its free pages back; never beside a running sync."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from syncd.cli import app
from syncd.store import Store
from syncd.store.lease import DEFAULT_NAME, PULL, PUSH, Lease

runner = CliRunner()


def _store_with_free_pages(tmp_path: Path) -> tuple[Path, Path]:
    db = tmp_path / "s.db"
    Store.open(f"sqlite:///{db}").close()
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE scratch (data BLOB)")
    con.executemany("INSERT INTO scratch VALUES (?)", [(bytes(4096),) for _ in range(2000)])
    con.commit()
    con.execute("DROP TABLE scratch")  # what a migration that rewrote a table leaves: free pages
    con.commit()
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    config = tmp_path / "syncd.toml"
    config.write_text(f'[invoiced]\napi_key = "sk_compact_secret_1"\n[store]\nurl = "sqlite:///{db}"\n')
    return db, config


def test_compact_gives_free_pages_back_and_keeps_the_data(tmp_path: Path) -> None:
    db, config = _store_with_free_pages(tmp_path)
    store = Store.open(f"sqlite:///{db}")
    store.set_cursor("invoices", "", 1_700_000_000)
    store.close()
    before = db.stat().st_size

    result = runner.invoke(app, ["--config", str(config), "store", "compact"])

    assert result.exit_code == 0, result.output
    assert "MiB given back" in result.output and "sk_compact_secret_1" not in result.output
    assert db.stat().st_size < before / 4  # 8 MiB of dropped rows gone
    store = Store.open(f"sqlite:///{db}")
    assert store.cursors("invoices") == {"": 1_700_000_000}
    store.close()


@pytest.mark.parametrize(
    ("lease", "role", "says"),
    [
        (PULL, "syncd sync", "pull lease is held by syncd sync"),
        (PUSH, "syncd push", "push lease is held by syncd push"),
        (DEFAULT_NAME, "syncd daemon", "another syncd daemon holds this checkpoint store"),
    ],
)
def test_compact_is_refused_while_another_process_holds_a_lease(
    tmp_path: Path, lease: str, role: str, says: str
) -> None:
    db, config = _store_with_free_pages(tmp_path)
    store = Store.open(f"sqlite:///{db}")
    # Another host's process: alive as far as this one can tell.
    Lease(store.engine, ttl=600, name=lease, host="elsewhere", role=role).acquire()
    store.close()
    before = db.stat().st_size

    result = runner.invoke(app, ["--config", str(config), "store", "compact"])

    assert result.exit_code == 4, result.output
    assert says in result.output and "Traceback" not in result.output
    assert db.stat().st_size == before
