"""The worker template unit: it verifies, and follows syncd.service's layout and hardening."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.units import unit_section, worker_options

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "deploy" / "syncd-worker@.service"
DAEMON = ROOT / "deploy" / "syncd.service"
# What the daemon's unit does to confine syncd; the workers are confined the same way.
SHARED = (
    "User",
    "Group",
    "StateDirectory",
    "ConfigurationDirectory",
    "WorkingDirectory",
    "KillSignal",
    "Restart",
    "NoNewPrivileges",
    "PrivateTmp",
    "ProtectSystem",
    "ProtectHome",
    "ProtectKernelTunables",
    "ProtectKernelModules",
    "ProtectControlGroups",
    "RestrictSUIDSGID",
    "LockPersonality",
    "MemoryMax",
)


def instance_environment(name: str) -> dict[str, str]:
    """Environment= of instance `name`, %i expanded, before any EnvironmentFile= overrides it."""
    service = unit_section(TEMPLATE, "Service")
    return dict(item.replace("%i", name).split("=", 1) for item in service["Environment"])


def instance_command(name: str, env: dict[str, str]) -> list[str]:
    """ExecStart of instance `name` as systemd runs it: ${VAR} one word, $VAR split at spaces."""
    words = []
    for word in shlex.split(unit_section(TEMPLATE, "Service")["ExecStart"][0].replace("%i", name)):
        if word.startswith("${") and word.endswith("}"):
            words.append(env[word[2:-1]])
        elif word.startswith("$"):
            words += env[word[1:]].split()
        else:
            words.append(word)
    return words


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_an_instance_of_the_template_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    syncd = Path(sys.executable).parent / "syncd"
    (tmp_path / TEMPLATE.name).write_text(
        TEMPLATE.read_text(encoding="utf-8").replace("/opt/syncd/.venv/bin/syncd", str(syncd)),
        encoding="utf-8",
    )
    # Verifying an instance loads the template and checks what only an instance has (ExecStart's binary).
    done = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(tmp_path / "syncd-worker@2.service")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    complaints = [line for line in done.stderr.splitlines() if "syncd-worker@" in line]
    assert done.returncode == 0 and not complaints, done.stderr


def test_workers_are_confined_like_the_daemon() -> None:
    worker, daemon = unit_section(TEMPLATE, "Service"), unit_section(DAEMON, "Service")
    for key in SHARED:
        assert worker.get(key) == daemon[key], key
    assert "SYNCD_STATE_DIR=/var/lib/syncd" in worker["Environment"]
    assert "2" in worker["RestartPreventExitStatus"][0].split()  # an invalid config is not restarted
    assert not worker.get("ReadWritePaths")


def test_each_instance_runs_a_named_worker_with_its_own_health_port() -> None:
    commands = [instance_command(n, instance_environment(n)) for n in ("1", "2", "3")]
    for n, command in zip("123", commands, strict=True):
        assert command[:4] == ["/opt/syncd/.venv/bin/syncd", "worker", "--config", "/etc/syncd/syncd.toml"]
        assert command[command.index("--health-port") + 1] == f"880{n}"
        assert command[command.index("--name") + 1] == f"%H-{n}"
    # An instance file may set the port and add options (--concurrency 8): read after the defaults.
    files = unit_section(TEMPLATE, "Service")["EnvironmentFile"]
    assert files == ["-/etc/syncd/syncd.env", "-/etc/syncd/worker-%i.env"]
    env = {
        **instance_environment("eu"),
        "SYNCD_WORKER_HEALTH_PORT": "8811",
        "SYNCD_WORKER_ARGS": "--concurrency 8",
    }
    command = instance_command("eu", env)
    assert command[-4:] == ["--health-port", "8811", "--concurrency", "8"]


def test_the_unit_uses_only_options_syncd_worker_has() -> None:
    options = worker_options()
    if options is None:
        pytest.skip("this build has no `syncd worker` command")
    env = {**instance_environment("1"), "SYNCD_WORKER_ARGS": "--concurrency 8"}
    used = {word for word in instance_command("1", env) if word.startswith("--")}
    assert used <= options, used - options
