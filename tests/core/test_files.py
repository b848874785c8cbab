"""Output files keep their mode across rewrites; temp files of a killed render are swept at start."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest

from connectors.csv import CsvConnector, CsvSettings
from connectors.ledger import LedgerConnector, LedgerSettings
from syncd.files import replaced
from syncd.plugin import ConnectorContext, OutputStore


@pytest.fixture
def umask() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _write(path: Path, text: str) -> None:
    with replaced(path) as fh:
        fh.write(text)


def test_a_new_file_follows_the_umask_and_a_rewrite_keeps_the_mode(tmp_path: Path, umask: None) -> None:
    path = tmp_path / "customers.csv"
    _write(path, "a\n")
    assert _mode(path) == 0o644  # 0666 less the umask 022, as `touch` would make it
    path.chmod(0o640)
    _write(path, "b\n")
    assert path.read_text() == "b\n" and _mode(path) == 0o640  # the user's chmod stays
    path.chmod(0o664)
    _write(path, "c\n")
    assert _mode(path) == 0o664
    os.umask(0o077)
    _write(tmp_path / "private.csv", "x\n")
    assert _mode(tmp_path / "private.csv") == 0o600


def _killed_render(target: Path) -> Path:
    """A process killed in the middle of replacing `target`: its temp file stays behind."""
    code = (
        "import os, sys\nfrom pathlib import Path\nfrom syncd.files import replaced\n"
        "with replaced(Path(sys.argv[1])) as fh:\n    fh.write('half a file'); fh.flush(); os._exit(9)\n"
    )
    subprocess.run([sys.executable, "-c", code, str(target)], check=False, timeout=60)
    (tmp,) = target.parent.glob(f".{target.name}.*.tmp")
    return tmp


def _age(path: Path, seconds: float) -> Path:
    then = time.time() - seconds
    os.utime(path, (then, then))
    return path


def _file(path: Path, age: float) -> Path:
    path.write_text("x")
    return _age(path, age)


def _context(tmp_path: Path, columns: dict[str, list[str]]) -> ConnectorContext:
    return ConnectorContext(
        name="x", outputs=cast(OutputStore, object()), state_dir=tmp_path, columns=columns
    )


def test_csv_open_removes_the_temp_files_of_a_killed_render_only(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    killed = _age(_killed_render(out / "customers.csv"), 120)
    just_killed = _killed_render(out / "transactions.csv")  # may be another host's writer: wait a bit
    old_style = _file(out / ".invoices.csv.k3j_x9a2.tmp", 7200)  # an older syncd's name, abandoned
    ours = _file(out / f".invoices.csv.{os.getpid()}.0123abcd.tmp", 120)  # a live writer's
    others = [_file(out / name, 7200) for name in ("notes.tmp", ".report.txt.abcdefgh.tmp", "customers.csv")]

    CsvConnector(CsvSettings(directory=out), _context(tmp_path, {"customers": ["id"]})).open()

    assert not killed.exists() and not old_style.exists()
    assert just_killed.exists() and ours.exists() and all(p.exists() for p in others)


def test_ledger_open_removes_the_temp_files_of_a_killed_render(tmp_path: Path) -> None:
    journal = tmp_path / "books" / "invoiced.journal"
    journal.parent.mkdir()
    killed = _age(_killed_render(journal), 120)
    LedgerConnector(LedgerSettings(path=journal), _context(tmp_path, {})).open()
    assert not killed.exists()
