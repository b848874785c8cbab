"""A command imports only what it needs: start-up time is mostly imports.

Each case runs `syncd ARGS` in a fresh interpreter (through the console entry point) and
lists the modules it loaded; a light command must not load a heavy one. Import order, not
timing, is asserted: the times are shown by `python -X importtime -m syncd ...`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import create_engine, text

from syncd.store import Store
from syncd.store.database import _normalise
from syncd.store.migrate import VERSION_TABLE, alembic_config, head, newest_file_revision
from tests.engine.helpers import CSV_MAPPING, ROOT

# Never needed by a command that neither migrates a store nor runs the daemon or a worker.
NEVER = ("alembic", "mako", "procrastinate", "prometheus_client", "psycopg", "beancount", "schedule")
# Off a terminal (these runs' stderr is a pipe): rich's tracebacks, which structlog imports if
# it can, and httpx's command line.
OFF_TERMINAL = ("rich.traceback", "rich.pretty", "pygments", "httpx._main")
# Nor by `--help` or a usage error: the configuration, the store, the API client, logging.
NOT_FOR_HELP = (
    *NEVER,
    "pydantic_settings",
    "sqlalchemy",
    "sqlmodel",
    "httpx",
    "structlog",
    "syncd.config",
    "syncd.store.store",
    "syncd.engine",
    "syncd.reconcile",
    "syncd.sandbox.server",
)

HARNESS = """
import json, sys
from syncd.cli import main
out, sys.argv = sys.argv[1], ["syncd", *sys.argv[2:]]
try:
    main()
except SystemExit as exc:
    code = exc.code
else:
    code = 0
with open(out, "w") as f:
    json.dump({"code": code, "modules": sorted(sys.modules)}, f)
"""


def _loaded(tmp_path: Path, *args: str) -> tuple[Any, set[str]]:
    """Run `syncd ARGS` in a new interpreter: (its exit code, the modules it imported)."""
    out = tmp_path / "modules.json"
    proc = subprocess.run(
        [sys.executable, "-c", HARNESS, str(out), *args],
        cwd=tmp_path,
        env={**os.environ, "COLUMNS": "200", "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.exists(), proc.stderr
    result = json.loads(out.read_text(encoding="utf-8"))
    return result["code"], set(result["modules"])


def _heavy(modules: set[str], banned: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == b or m.startswith(b + ".") for b in banned))


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["--help"], 0),
        (["--version"], 0),
        (["--no-such-option"], 2),  # a usage error, from typer alone
        (["sync", "--help"], 0),
        (["status", "--help"], 0),
        (["errors", "--help"], 0),
        (["sandbox", "--help"], 0),
        (["worker", "--help"], 0),
        (["store", "upgrade", "--help"], 0),
        (["nosuchcommand"], 2),
    ],
)
def test_help_and_usage_errors_import_no_machinery(tmp_path: Path, args: list[str], code: int) -> None:
    exit_code, modules = _loaded(tmp_path, *args)
    assert exit_code == code
    assert _heavy(modules, NOT_FOR_HELP) == []


def _config(tmp_path: Path, url: str = "http://127.0.0.1:9", key: str = "sk_test_lazy") -> Path:
    config = tmp_path / "syncd.toml"
    config.write_text(
        f'[invoiced]\nbase_url = "{url}"\napi_key = "{key}"\n'
        f'[store]\nurl = "sqlite:///{tmp_path / "s.db"}"\n'
        f'[connectors.csv]\nenabled = true\ndirectory = "{tmp_path / "out"}"\nmapping = "{CSV_MAPPING}"\n',
        encoding="utf-8",
    )
    return config


def test_status_of_a_current_store_imports_neither_alembic_nor_the_api_client(tmp_path: Path) -> None:
    config = _config(tmp_path)
    Store.open(f"sqlite:///{tmp_path / 's.db'}").close()  # created (and migrated) here
    code, modules = _loaded(tmp_path, "--config", str(config), "status")
    assert code == 0
    assert "syncd.store.store" in modules  # it did read the store
    assert _heavy(modules, (*NEVER, "httpx", "syncd.invoiced.client", "syncd.sandbox.server")) == []
    assert _heavy(modules, OFF_TERMINAL) == []


def test_sync_with_a_current_store_imports_no_alembic(make_sandbox: Any, tmp_path: Path) -> None:
    sandbox = make_sandbox(customers=3, invoices=5, transactions=2)
    config = _config(tmp_path, sandbox.url, sandbox.api_key)
    Store.open(f"sqlite:///{tmp_path / 's.db'}").close()
    code, modules = _loaded(tmp_path, "--config", str(config), "sync")
    assert code == 0
    assert (tmp_path / "out" / "invoices.csv").exists()  # it did sync
    assert _heavy(modules, (*NEVER, "syncd.sandbox.server", "syncd.daemon", "syncd.worker")) == []
    assert _heavy(modules, OFF_TERMINAL) == []


def test_a_new_sqlite_store_is_created_without_alembic(tmp_path: Path) -> None:
    """From the shipped snapshot of the schema (migrate.py): a first sync, the benchmark's
    case, does not pay for Alembic."""
    code, modules = _loaded(tmp_path, "--config", str(_config(tmp_path)), "status")
    assert code == 0
    assert _heavy(modules, NEVER) == []
    engine = create_engine(f"sqlite:///{tmp_path / 's.db'}")
    with engine.connect() as conn:
        assert conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar() == head()
        assert conn.execute(text("SELECT value FROM meta WHERE key = 'schema_version'")).scalar() == "2"
    engine.dispose()


def test_a_first_sync_imports_no_alembic(make_sandbox: Any, tmp_path: Path) -> None:
    sandbox = make_sandbox(customers=3, invoices=5, transactions=2)
    code, modules = _loaded(
        tmp_path, "--config", str(_config(tmp_path, sandbox.url, sandbox.api_key)), "sync"
    )
    assert code == 0
    assert (tmp_path / "out" / "invoices.csv").exists()  # it did sync
    assert _heavy(modules, (*NEVER, "syncd.sandbox.server", "syncd.daemon", "syncd.worker")) == []
    assert _heavy(modules, OFF_TERMINAL) == []


RUNNER = """
import json, runpy, sys
out, sys.argv = sys.argv[1], sys.argv[2:]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
except SystemExit as exc:
    code = exc.code
with open(out, "w") as f:
    json.dump({"code": code, "modules": sorted(sys.modules)}, f)
"""


def test_the_benchmarks_first_sync_imports_neither_alembic_nor_rich(
    make_sandbox: Any, tmp_path: Path
) -> None:
    """bench/syncd_runner.py (the library, no terminal): its start-up is on the benchmark's
    critical path. rich draws the CLI's views and summaries only."""
    sandbox = make_sandbox(customers=3, invoices=5, transactions=2)
    out = tmp_path / "modules.json"
    runner = ROOT / "bench" / "syncd_runner.py"
    args = ["--url", sandbox.url, "--api-key", sandbox.api_key, "--store", str(tmp_path / "s.db")]
    proc = subprocess.run(
        [sys.executable, "-c", RUNNER, str(out), str(runner), *args, "--out", str(tmp_path / "out")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.exists(), proc.stderr
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["code"] == 0, proc.stdout + proc.stderr
    assert (tmp_path / "out" / "invoices.csv").exists()  # it did sync
    assert _heavy(set(result["modules"]), (*NEVER, *OFF_TERMINAL, "rich")) == []


@pytest.mark.parametrize("terminal", [True, False])
def test_structlog_renders_exceptions_through_rich_on_a_terminal_only(terminal: bool) -> None:
    import pty

    main, child = pty.openpty() if terminal else (None, subprocess.PIPE)
    try:
        proc = subprocess.run(
            [sys.executable, "-c", "import syncd.log, structlog.dev; print(structlog.dev.rich is not None)"],
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.PIPE,
            stderr=child,
            text=True,
            timeout=120,
            check=True,
        )
    finally:
        for fd in (main, child):
            if isinstance(fd, int) and fd >= 0:
                os.close(fd)
    assert proc.stdout.strip() == str(terminal)


def test_the_newest_migration_file_is_alembics_head() -> None:
    """The cheap check of a store's revision (no Alembic) compares it with this."""
    assert newest_file_revision() == head()


def test_a_store_one_revision_behind_is_upgraded(store_url: str) -> None:
    """The cheap check says "not current"; Alembic then migrates, as before."""
    previous = f"{int(head()) - 1:04d}"
    command.upgrade(alembic_config(_normalise(store_url)), previous)
    store = Store.open(store_url)
    try:
        with store.engine.connect() as conn:
            assert conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar() == head()
    finally:
        store.close()
