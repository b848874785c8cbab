"""The store's schema is managed by Alembic: previous stores are upgraded with their data."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from sqlmodel import SQLModel
from typer.testing import CliRunner

from syncd.cli import app
from syncd.plugin import Record
from syncd.store import Store, content_hash, migrate
from syncd.store.database import _normalise
from syncd.store.migrate import BASELINE, VERSION_TABLE, alembic_config, head, pending, version_table_opts

LEGACY_ROWS = 3


def make_legacy_store(url: str) -> None:
    """A store as the syncd before migrations left it: the v1 tables, `schema_version` 1, no
    version table, and data in it (raw records, a cursor, a dead letter, a payment)."""
    url = _normalise(url)
    command.upgrade(alembic_config(url), BASELINE)  # the baseline is that schema, table for table
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE syncd_alembic_version"))
        conn.execute(text("INSERT INTO meta (key, value) VALUES ('schema_version', '1')"))
        for i in range(LEGACY_ROWS):
            conn.execute(
                text(
                    "INSERT INTO rawrecord (stream, record_id, sort_key, updated_at, content_hash, "
                    "dependents_due, deleted, data) VALUES ('customers', :id, :n, 100, :h, false, false, :d)"
                ),
                {"id": str(i), "n": i, "h": content_hash({"id": i}), "d": f'{{"id":{i}}}'},
            )
        conn.execute(
            text(
                "INSERT INTO cursor (stream, partition, value, advanced_at) VALUES ('customers', '', 99, 1.0)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO deadletter (connector, stream, record_id, reason, first_seen, last_seen, attempts) "
                "VALUES ('csv', 'customers', '7', 'bad', 1.0, 2.0, 1)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO pushedpayment (external_id, source, fingerprint, state, payload, origin, "
                "dependents_due, attempts, created_at, updated_at) "
                "VALUES ('EXT-1', 'csv', 'fp', 'posted', '{}', 'payments.csv:2', false, 1, 1.0, 1.0)"
            )
        )
    engine.dispose()


def test_migrations_build_exactly_the_models_schema(store_url: str) -> None:
    """Fails when a column or index is added to models.py without a migration
    (`python -m syncd.store.migrations "what changed"` writes it)."""
    store = Store.open(store_url)
    try:
        with store.engine.connect() as conn:
            diff = compare_metadata(
                MigrationContext.configure(conn, opts={"compare_type": True, **version_table_opts(None)}),
                SQLModel.metadata,
            )
        assert diff == []
    finally:
        store.close()


def test_a_store_of_the_previous_schema_is_stamped_and_upgraded_with_its_data(store_url: str) -> None:
    make_legacy_store(store_url)
    store = Store.open(store_url)
    try:
        assert store.count_raw("customers") == LEGACY_ROWS
        assert store.get_raw("customers", "1") == {"id": 1}
        assert store.cursors("customers") == {"": 99}
        assert [d.reason for d in store.dead_letters()] == ["bad"]
        assert store.get_meta("schema_version") == "2"  # an older syncd now refuses the store
        with store.engine.connect() as conn:
            assert pending(store.engine)[0].revision == head() != BASELINE
            indexes = {ix["name"] for ix in inspect(conn).get_indexes("deadletter")}
            assert "ix_deadletter_last_seen" in indexes  # the second migration ran
            state = conn.execute(
                text("SELECT state FROM pushedpayment WHERE external_id = 'EXT-1'")
            ).scalar_one()
            assert state == "posted"
        store.save_raw([(Record("customers", "9", 9, {"id": 9}), content_hash({"id": 9}))])
        assert store.count_raw("customers") == LEGACY_ROWS + 1
    finally:
        store.close()
    Store.open(store_url).close()  # and opens again without migrating anything


def test_a_sqlite_store_made_by_the_previous_syncd_is_upgraded(tmp_path: Path) -> None:
    """fixtures/v1_store.sql: `sqlite3 .dump` of a store the syncd before migrations created
    (its models.py, `create_all`, `schema_version` 1) with a few rows of every kind."""
    path = tmp_path / "v1.db"
    with sqlite3.connect(path) as conn:
        conn.executescript((Path(__file__).parent / "fixtures" / "v1_store.sql").read_text(encoding="utf-8"))
    store = Store.open(f"sqlite:///{path}")
    try:
        assert store.get_raw("customers", "2") == {"id": 2, "name": "Customer 2"}
        assert store.cursors("customers") == {"": 99}
        assert store.get_meta("mapping:csv") == "abc123"
        assert [r.status for r in store.recent_runs()] == ["ok"]
        assert store.get_meta("schema_version") == "2"
        with store.engine.connect() as conn:
            assert pending(store.engine)[0].revision == head()
            diff = compare_metadata(
                MigrationContext.configure(conn, opts={"compare_type": True, **version_table_opts(None)}),
                SQLModel.metadata,
            )
        assert diff == []  # upgraded to exactly today's schema
        run = store.start_run("sync")
        assert run == 2  # the id sequence goes on
    finally:
        store.close()


def _config(tmp_path: Path, store_url: str) -> Path:
    path = tmp_path / "syncd.toml"
    path.write_text(f'[invoiced]\napi_key = "sk_test"\n[store]\nurl = "{store_url}"\n', encoding="utf-8")
    return path


def test_store_upgrade_dry_run_shows_what_would_run_and_changes_nothing(
    store_url: str, tmp_path: Path
) -> None:
    make_legacy_store(store_url)
    config = _config(tmp_path, store_url)
    runner = CliRunner()
    result = runner.invoke(app, ["--config", str(config), "store", "upgrade", "--dry-run"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "created before migrations" in out and f"would be stamped {BASELINE}" in out
    assert "would apply, in order:" in out and "0002  Dead letters indexed by last_seen" in out
    assert "CREATE INDEX ix_deadletter_last_seen ON deadletter (last_seen)" in out
    engine = create_engine(_normalise(store_url))
    with engine.connect() as conn:
        assert VERSION_TABLE not in inspect(conn).get_table_names()  # nothing ran
    engine.dispose()

    result = runner.invoke(app, ["--config", str(config), "store", "upgrade"])
    assert result.exit_code == 0, result.output
    assert "applied 0002" in result.output
    result = runner.invoke(app, ["--config", str(config), "store", "upgrade", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert f"nothing to do: at the newest revision {head()}" in result.output


def test_an_unknown_schema_version_is_refused_on_one_line(store_url: str, tmp_path: Path) -> None:
    make_legacy_store(store_url)
    engine = create_engine(_normalise(store_url))
    with engine.begin() as conn:
        conn.execute(text("UPDATE meta SET value = '7' WHERE key = 'schema_version'"))
    engine.dispose()
    result = CliRunner().invoke(app, ["--config", str(_config(tmp_path, store_url)), "store", "upgrade"])
    assert result.exit_code == 2
    assert "schema version 7 but no migration history" in result.output
    assert "Traceback" not in result.output


def test_migrations_ship_inside_the_package() -> None:
    import syncd.store.migrations as pkg

    here = Path(pkg.__file__).parent
    assert (here / "versions" / "__init__.py").exists()  # a package: setuptools ships it
    assert len(list((here / "versions").glob("0*.py"))) >= 2
    assert (here / "script.py.mako").exists()  # package data (pyproject: *.mako)


def _sqlite_dump(path: Path) -> tuple[list[str], list[tuple[str, ...]]]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        objects = conn.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name"
        ).fetchall()
        return sorted(conn.iterdump()), objects


def test_the_sqlite_snapshot_is_what_the_migrations_build() -> None:
    """Fails when a migration is added or edited without `python -m syncd.store.migrations
    --sqlite-snapshot` (new SQLite stores would then be made by Alembic, slower but right)."""
    shipped = migrate._sqlite_snapshot()
    assert shipped is not None, "sqlite_head.json is missing or not at the newest migration"
    assert shipped == migrate.sqlite_snapshot_at_head()


def test_a_new_sqlite_store_is_the_store_alembic_builds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same schema objects and the same rows (revision, schema_version). Not always in the same
    order: the order Alembic's batch mode recreates a table's indexes in varies."""
    Store.open(f"sqlite:///{tmp_path / 'snapshot.db'}").close()
    monkeypatch.setattr(migrate, "_sqlite_snapshot", lambda: None)  # as if it were stale
    Store.open(f"sqlite:///{tmp_path / 'alembic.db'}").close()
    assert _sqlite_dump(tmp_path / "snapshot.db") == _sqlite_dump(tmp_path / "alembic.db")


def test_a_stale_sqlite_snapshot_is_not_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stale = tmp_path / "sqlite_head.json"
    stale.write_text(
        json.dumps({"revision": "0001", "revisions": ["0001"], "statements": ["CREATE TABLE meta (x INT)"]}),
        encoding="utf-8",
    )
    monkeypatch.setattr(migrate, "SQLITE_SNAPSHOT", stale)
    store = Store.open(f"sqlite:///{tmp_path / 's.db'}")
    try:
        assert pending(store.engine) == (migrate.StoreRevision(head()), [])
        assert store.get_meta("schema_version") == "2"
    finally:
        store.close()


def test_a_sqlite_store_created_meanwhile_is_not_created_again(tmp_path: Path) -> None:
    """Another process created the store between the look and the lock: Alembic's path looks
    again (and finds it at the newest revision)."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    Store.open(url).close()
    engine = create_engine(url)
    try:
        assert migrate._create_sqlite(engine) == []
        assert migrate.migrate(engine) == []
        with engine.connect() as conn:
            assert conn.execute(text(f"SELECT count(*) FROM {VERSION_TABLE}")).scalar() == 1
    finally:
        engine.dispose()
