"""The systemd unit as documented: it verifies, and its layout runs the example config.

The layout: configuration read-only in /etc/syncd, state in /var/lib/syncd. Here both live
under a temporary root; the run must write nothing beside the configuration.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.units import unit_section

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "syncd.service"


def _service(unit: Path = UNIT) -> dict[str, list[str]]:
    """The [Service] section: every key with all its values, in order (keys may repeat)."""
    return unit_section(unit, "Service")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_the_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    syncd = Path(sys.executable).parent / "syncd"
    unit = tmp_path / "syncd.service"
    unit.write_text(UNIT.read_text(encoding="utf-8").replace("/opt/syncd/.venv/bin/syncd", str(syncd)))
    done = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(unit)], capture_output=True, text=True, timeout=120
    )
    complaints = [line for line in done.stderr.splitlines() if "syncd.service" in line]
    assert done.returncode == 0 and not complaints, done.stderr


def test_the_unit_keeps_config_read_only_and_state_in_var_lib() -> None:
    service = _service()
    state = "/var/lib/syncd"
    assert service["ExecStart"] == ["/opt/syncd/.venv/bin/syncd --config /etc/syncd/syncd.toml daemon"]
    assert service["StateDirectory"] == ["syncd"]  # /var/lib/syncd, writable under ProtectSystem=strict
    assert service["WorkingDirectory"] == [state]
    assert f"SYNCD_STATE_DIR={state}" in service["Environment"]
    assert service["ProtectSystem"] == ["strict"]
    assert all(path.startswith(state) for path in service.get("ReadWritePaths", []))
    assert "2" in service["RestartPreventExitStatus"][0].split()


def _layout(tmp_path: Path, sandbox: Any) -> tuple[Path, Path, dict[str, str]]:
    """/etc/syncd and /var/lib/syncd under tmp_path, with the example config as the README says."""
    etc, state = tmp_path / "etc" / "syncd", tmp_path / "var" / "lib" / "syncd"
    etc.mkdir(parents=True)
    state.mkdir(parents=True)
    example = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    assert 'base_url = "https://api.invoiced.com"' in example
    (etc / "syncd.toml").write_text(
        example.replace("https://api.invoiced.com", sandbox.url, 1), encoding="utf-8"
    )
    shutil.copytree(ROOT / "mappings", etc / "mappings")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}
    # What the unit's Environment= and EnvironmentFile= give the service.
    unit_env = dict(item.split("=", 1) for item in _service()["Environment"])
    env["SYNCD_STATE_DIR"] = str(tmp_path / unit_env["SYNCD_STATE_DIR"].lstrip("/"))
    env["SYNCD_INVOICED__API_KEY"] = sandbox.api_key
    return etc, state, env


def _tree(folder: Path) -> dict[str, float]:
    return {str(p.relative_to(folder)): p.stat().st_mtime for p in folder.rglob("*")}


def test_a_sync_with_the_documented_layout_writes_only_in_the_state_directory(
    make_sandbox: Any, tmp_path: Path
) -> None:
    sandbox = make_sandbox(customers=5, invoices=12, transactions=5)
    etc, state, env = _layout(tmp_path, sandbox)
    before = _tree(etc)
    done = subprocess.run(
        [sys.executable, "-m", "syncd.cli", "--config", str(etc / "syncd.toml"), "sync"],
        cwd=state,  # the unit's WorkingDirectory
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert _tree(etc) == before  # nothing written beside the (read-only) configuration
    assert (state / "syncd.db").exists()
    assert len((state / "out" / "customers.csv").read_text(encoding="utf-8").splitlines()) == 6
