"""What `syncd` prints on a terminal and off one: -v, -q, the log file, demo --fresh, status --watch."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from syncd import terminal
from syncd.cli import app
from syncd.config import load_settings
from syncd.demo import run_demo
from syncd.status import watch_status
from syncd.store import Store
from tests.engine.helpers import CSV_MAPPING

runner = CliRunner()


def write_config(tmp_path: Path, sandbox: Any) -> Path:
    config = tmp_path / "syncd.toml"
    config.write_text(
        f'[invoiced]\nbase_url = "{sandbox.url}"\napi_key = "{sandbox.api_key}"\nper_page = 10\n'
        f'[store]\nurl = "sqlite:///{tmp_path / "s.db"}"\n'
        f'[connectors.csv]\nenabled = true\ndirectory = "{tmp_path / "out"}"\nmapping = "{CSV_MAPPING}"\n'
    )
    return config


@pytest.fixture
def on_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(terminal, "on_terminal", lambda: True)


def sync(config: Path, *options: str) -> Any:
    return runner.invoke(app, [*options, "--config", str(config), "sync"], env={"COLUMNS": "120"})


@pytest.mark.usefixtures("on_terminal")
def test_on_a_terminal_info_lines_go_to_a_log_file_named_once_in_the_summary(
    make_sandbox: Any, tmp_path: Path
) -> None:
    result = sync(write_config(tmp_path, make_sandbox(p429=0.2)))
    assert result.exit_code == 0, result.output
    assert "60 invoices written to " in result.stdout
    assert result.stdout.count(f"log: {tmp_path / 'syncd.log'}") == 1
    for noise in ("stream.synced", "csv.rendered", "api.retry", "[info"):
        assert noise not in result.output
    assert "rec/s" in result.stderr  # the view, drawn on stderr
    events = [json.loads(line)["event"] for line in (tmp_path / "syncd.log").read_text().splitlines()]
    assert "stream.synced" in events and ("api.retry" in events or "api.waiting" in events)


@pytest.mark.usefixtures("on_terminal")
def test_verbose_keeps_every_line_on_the_terminal_and_writes_no_file(
    make_sandbox: Any, tmp_path: Path
) -> None:
    result = sync(write_config(tmp_path, make_sandbox()), "-v")
    assert result.exit_code == 0, result.output
    shown = re.sub(r"\x1b\[[0-9;]*m", "", result.stderr)
    assert "stream.synced" in shown and "[info" in shown
    assert not (tmp_path / "syncd.log").exists() and "log:" not in result.stdout


@pytest.mark.usefixtures("on_terminal")
def test_quiet_prints_the_summary_and_errors_only(make_sandbox: Any, tmp_path: Path) -> None:
    result = sync(write_config(tmp_path, make_sandbox(p429=0.2)), "-q")
    assert result.exit_code == 0, result.output
    assert "60 invoices written to " in result.stdout
    assert result.stderr == ""  # no view, no warning (the 429 retries are in the log file)
    assert "api.waiting" in (tmp_path / "syncd.log").read_text()


def test_off_a_terminal_the_json_log_stays_on_stderr(make_sandbox: Any, tmp_path: Path) -> None:
    result = sync(write_config(tmp_path, make_sandbox()))
    assert result.exit_code == 0, result.output
    events = [json.loads(line)["event"] for line in result.stderr.splitlines()]
    assert "stream.synced" in events
    assert "rec/s" not in result.output and "log:" not in result.stdout
    assert not (tmp_path / "syncd.log").exists()


def test_demo_says_it_reuses_an_earlier_store_and_fresh_starts_over(tmp_path: Path) -> None:
    def demo(**kwargs: Any) -> str:
        console = Console(record=True, width=200, file=None, force_terminal=False)
        with console.capture() as captured:
            run_demo(tmp_path / "out", 20, console, **kwargs)
        return captured.get()

    first = demo()
    assert "reusing" not in first and "first sync: 0 records" not in first
    again = demo()
    assert "reusing the store of an earlier demo" in again and "syncd demo --fresh" in again
    assert "first sync: 0 records" in again and "the earlier demo synced the rest" in again
    fresh = demo(fresh=True)
    assert "starting over" in fresh and "reusing" not in fresh
    assert "first sync: 0 records" not in fresh


def status_config(tmp_path: Path) -> Path:
    config = tmp_path / "syncd.toml"
    config.write_text(
        f'[invoiced]\nbase_url = "http://127.0.0.1:9"\n[store]\nurl = "sqlite:///{tmp_path / "s.db"}"\n'
    )
    return config


def test_status_watch_redraws_what_changed_and_leaves_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    config = status_config(tmp_path)
    settings = load_settings(config)
    frames: list[int] = []

    def sleep(seconds: float) -> None:
        frames.append(1)
        if len(frames) == 1:  # between the first and second frame, a run finishes
            store = Store.open(settings.store_url())
            run = store.start_run("sync")
            store.finish_run(run, "ok", {"streams": {"invoices": {"fetched": 7, "changed": 7}}})
            store.close()
        else:
            raise KeyboardInterrupt

    console = Console(record=True, width=160, force_terminal=True, color_system=None)
    assert watch_status(settings, console, interval=2.0, sleep=sleep) == 2
    text = console.export_text()
    assert text.count("recent runs") >= 2
    assert "invoices: 7 fetched/7 changed" in text


def test_status_watch_command_stops_after_count_frames_with_exit_0(tmp_path: Path) -> None:
    config = status_config(tmp_path)
    result = runner.invoke(
        app, ["--config", str(config), "status", "--watch", "--interval", "0", "--count", "3"]
    )
    assert result.exit_code == 0, result.output
    assert "recent runs" in result.output and "push-back outbox: empty" in result.output
