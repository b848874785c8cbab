"""`syncd sync` in a real terminal (tmux, 100x30): bars, a summary, and hardly any log lines."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.cli.test_terminal import write_config

TMUX = shutil.which("tmux")
pytestmark = pytest.mark.skipif(
    TMUX is None, reason="tmux is not installed (`bash scripts/dev.sh services` installs it)"
)
LOG_LINE = re.compile(r"\[\s*(debug|info|warning|error)\s*\]|\"event\":")


def tmux(socket: str, *args: str) -> str:
    assert TMUX is not None
    return subprocess.run([TMUX, "-L", socket, *args], check=True, capture_output=True, text=True).stdout


def test_sync_under_tmux_shows_bars_and_at_most_a_few_log_lines(make_sandbox: Any, tmp_path: Path) -> None:
    sandbox = make_sandbox(customers=20, invoices=150, transactions=60, latency=0.01, p429=0.1, seed=11)
    config = write_config(tmp_path, sandbox)  # 10 per page: dozens of pages
    exit_file = tmp_path / "exit-code"
    conf = tmp_path / "tmux.conf"
    conf.write_text("set -g remain-on-exit on\nset -g history-limit 1000\n")
    command = (
        f"{shlex.quote(sys.executable)} -m syncd --config {shlex.quote(str(config))} sync; "
        f"echo $? > {shlex.quote(str(exit_file))}"
    )
    socket = f"syncd-test-{uuid.uuid4().hex[:8]}"
    tmux(
        socket,
        "-f",
        str(conf),
        "new-session",
        "-d",
        "-s",
        "t",
        "-x",
        "100",
        "-y",
        "30",
        "-c",
        str(tmp_path),
        command,
    )
    try:
        deadline = time.monotonic() + 180
        while not (exit_file.exists() and exit_file.read_text().strip()):
            assert time.monotonic() < deadline, tmux(socket, "capture-pane", "-p", "-t", "t")
            time.sleep(0.1)
        pane = tmux(socket, "capture-pane", "-p", "-S", "-200", "-t", "t")
    finally:
        subprocess.run([TMUX or "tmux", "-L", socket, "kill-server"], check=False, capture_output=True)
    assert exit_file.read_text().strip() == "0", pane
    lines = pane.splitlines()
    for stream, n in (("customers", 20), ("invoices", 150), ("transactions", 60)):
        bars = [line for line in lines if line.startswith(stream) and "━" in line]
        assert bars and f" {n}/{n} " in bars[-1] and "100%" in bars[-1], pane
        assert "done" in bars[-1] and "rec/s" in bars[-1], pane
    assert "150 invoices written to " in pane
    assert "log: syncd.log" in pane
    assert all(len(line) <= 100 for line in lines)
    assert len([line for line in lines if LOG_LINE.search(line)]) <= 3, pane


def test_status_watch_under_tmux_redraws_and_leaves_on_ctrl_c_with_exit_0(tmp_path: Path) -> None:
    config = tmp_path / "syncd.toml"
    config.write_text(
        f'[invoiced]\nbase_url = "http://127.0.0.1:9"\n[store]\nurl = "sqlite:///{tmp_path / "s.db"}"\n'
    )
    exit_file = tmp_path / "exit-code"
    conf = tmp_path / "tmux.conf"
    conf.write_text("set -g remain-on-exit on\n")
    command = (
        f"{shlex.quote(sys.executable)} -m syncd --config {shlex.quote(str(config))} "
        f"status --watch --interval 0.2 2>{shlex.quote(str(tmp_path / 'stderr'))}; "
        f"echo $? > {shlex.quote(str(exit_file))}"
    )
    socket = f"syncd-test-{uuid.uuid4().hex[:8]}"
    tmux(socket, "-f", str(conf), "new-session", "-d", "-s", "t", "-x", "100", "-y", "30", command)
    try:
        deadline = time.monotonic() + 120
        while "push-back outbox" not in tmux(socket, "capture-pane", "-p", "-t", "t"):
            assert time.monotonic() < deadline, tmux(socket, "capture-pane", "-p", "-t", "t")
            time.sleep(0.1)
        tmux(socket, "send-keys", "-t", "t", "C-c")
        while not (exit_file.exists() and exit_file.read_text().strip()):
            assert time.monotonic() < deadline, tmux(socket, "capture-pane", "-p", "-t", "t")
            time.sleep(0.1)
        pane = tmux(socket, "capture-pane", "-p", "-t", "t")
    finally:
        subprocess.run([TMUX or "tmux", "-L", socket, "kill-server"], check=False, capture_output=True)
    assert exit_file.read_text().strip() == "0", pane
    assert "Traceback" not in pane and (tmp_path / "stderr").read_text() == ""
    assert pane.count("recent runs") == 1  # redrawn in place, not appended
