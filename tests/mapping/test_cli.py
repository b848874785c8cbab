"""`syncd mappings check` and `syncd mappings preview` through the real command line."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from syncd.cli import app
from syncd.plugin import Record
from syncd.store import Store, content_hash
from tests.mapping.helpers import MAPPINGS, example

runner = CliRunner()
WIDE = {"COLUMNS": "220"}


def _config(tmp_path: Path, mapping: Path) -> Path:
    config = tmp_path / "syncd.toml"
    config.write_text(
        f'[store]\nurl = "sqlite:///{tmp_path / "s.db"}"\n'
        f'[connectors.csv]\nenabled = true\ndirectory = "{tmp_path / "out"}"\nmapping = "{mapping}"\n',
        encoding="utf-8",
    )
    return config


def _mapping(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "csv.toml"
    shutil.copy(MAPPINGS / "csv.toml", path)
    if extra:
        with path.open("a", encoding="utf-8") as fh:
            fh.write(extra)
    return path


def _store(tmp_path: Path, records: list[tuple[str, dict[str, Any]]]) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 's.db'}")
    store.save_raw(
        [
            (Record(stream, str(data["id"]), int(data["updated_at"]), data), content_hash(data))
            for stream, data in records
        ]
    )
    store.close()


def test_check_accepts_the_shipped_mapping(tmp_path: Path) -> None:
    result = runner.invoke(app, ["--config", str(_config(tmp_path, _mapping(tmp_path))), "mappings", "check"])
    assert result.exit_code == 0, result.output
    assert "csv.toml: ok (connector csv)" in result.output


def test_check_lists_every_error_with_file_line_column_and_fails(tmp_path: Path) -> None:
    mapping = _mapping(
        tmp_path,
        '\n[tables.broken]\nstream = "invoicez"\n\n[tables.other]\nstream = "customers"\nfields = [{ name = "n", from = "nmae" }]\n',
    )
    lines = (MAPPINGS / "csv.toml").read_text(encoding="utf-8").count("\n")
    result = runner.invoke(app, ["--config", str(_config(tmp_path, mapping)), "mappings", "check"], env=WIDE)
    assert result.exit_code == 1
    assert f"csv.toml:{lines + 3}:10: tables.broken.stream: unknown stream 'invoicez'" in result.output
    assert "(did you mean 'invoices'?)" in result.output
    assert f"csv.toml:{lines + 7}:" in result.output and "(did you mean 'name'?)" in result.output
    assert "2 error(s)" in result.output


def test_preview_shows_mapped_values_next_to_sources_and_filters(tmp_path: Path) -> None:
    mapping = _mapping(tmp_path)
    text = mapping.read_text(encoding="utf-8")
    # skip drafts in the invoices table only, to see the filter in the preview
    text = text.replace(
        '[tables.invoices]\nstream = "invoices"\n',
        '[tables.invoices]\nstream = "invoices"\nskip = [{ path = "draft", equals = true }]\n',
    )
    mapping.write_text(text, encoding="utf-8")
    invoice, customer = example("invoicing/invoices/object.json"), example("customers/object.json")
    draft = {**invoice, "id": 46226, "number": "INV-0017", "draft": True, "items": []}
    _store(tmp_path, [("invoices", invoice), ("invoices", draft), ("customers", customer)])
    config = _config(tmp_path, mapping)
    result = runner.invoke(
        app, ["--config", str(config), "mappings", "preview", "csv", "invoices", "--limit", "5"], env=WIDE
    )
    assert result.exit_code == 0, result.output
    out = result.output
    assert "table 'invoices' from stream 'invoices'" in out
    assert "table 'invoice_lines' from stream 'invoices'" in out
    # mapped value, its source value, and the source path with the chain
    row = next(line for line in out.splitlines() if " due_date " in line)
    assert "2014-12-02" in row and "1417500000" in row and "due_date | date" in row
    # a reference read from the store: the invoice only holds the customer's id
    assert next(line for line in out.splitlines() if " customer_name " in line).count("Acme") == 2
    assert "51.15" in out and "total | money" in out
    # the draft is skipped in one table, kept (without lines) in the other
    assert "invoices 46226" in out and "(skipped)" in out and "draft equals true" in out
    assert "(no items[])" in out
    assert "Copy Paper, Case" in out and "invoices 46225 line 2" in out


def test_preview_limit_caps_records(tmp_path: Path) -> None:
    invoice = example("invoicing/invoices/object.json")
    _store(tmp_path, [("invoices", {**invoice, "id": 100 + i, "number": f"N-{i}"}) for i in range(5)])
    config = _config(tmp_path, _mapping(tmp_path))
    result = runner.invoke(
        app, ["--config", str(config), "mappings", "preview", "csv", "invoices", "-n", "2"], env=WIDE
    )
    assert result.exit_code == 0, result.output
    assert "N-0" in result.output and "N-1" in result.output and "N-2" not in result.output


def test_preview_errors_name_what_is_wrong(tmp_path: Path) -> None:
    config = _config(tmp_path, _mapping(tmp_path))
    result = runner.invoke(app, ["--config", str(config), "mappings", "preview", "csv", "invoice"], env=WIDE)
    assert result.exit_code == 2
    assert "unknown stream 'invoice'" in result.output and "did you mean 'invoices'" in result.output
    result = runner.invoke(app, ["--config", str(config), "mappings", "preview", "cvs", "invoices"], env=WIDE)
    assert result.exit_code == 2
    assert "connector 'cvs' is not configured" in result.output and "did you mean 'csv'" in result.output
    result = runner.invoke(app, ["--config", str(config), "mappings", "preview", "csv", "invoices"], env=WIDE)
    assert result.exit_code == 0
    assert "no invoices in the checkpoint store yet" in result.output


def test_preview_refuses_an_invalid_mapping_with_its_position(tmp_path: Path) -> None:
    config = _config(tmp_path, _mapping(tmp_path, '\n[tables.broken]\nstream = "invoicez"\n'))
    result = runner.invoke(app, ["--config", str(config), "mappings", "preview", "csv", "invoices"], env=WIDE)
    assert result.exit_code == 2
    assert "csv.toml:" in result.output and "did you mean 'invoices'" in result.output
