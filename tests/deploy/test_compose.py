"""deploy/compose.yaml: PostgreSQL with a healthcheck and three workers that wait for it."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.units import worker_options

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "deploy" / "compose.yaml"


def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))  # merge keys (<<: *worker) resolved
    assert isinstance(loaded, dict)
    return loaded


def workers(services: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in services.items() if s.get("command", [None])[0] == "worker"}


def option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_postgres_has_a_healthcheck_and_keeps_its_data_in_a_volume() -> None:
    spec = compose()
    postgres = spec["services"]["postgres"]
    assert postgres["image"].startswith("postgres:")
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    assert "pgdata" in spec["volumes"]
    assert any(v.startswith("pgdata:") for v in postgres["volumes"])
    assert "ports" not in postgres  # the database is reached by the workers only


def test_three_workers_wait_for_postgres_and_report_health_on_their_port() -> None:
    services = compose()["services"]
    found = workers(services)
    assert len(found) == 3
    names, host_ports = set(), set()
    for service in found.values():
        command = service["command"]
        assert service["entrypoint"] == ["syncd"]
        assert option(command, "--config") == "/data/syncd.toml"
        assert option(command, "--health-host") == "0.0.0.0"  # inside the container
        port = option(command, "--health-port")
        names.add(option(command, "--name"))
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
        check = " ".join(service["healthcheck"]["test"])
        assert f"127.0.0.1:{port}/healthz" in check
        (published,) = service["ports"]
        host, host_port, container_port = published.split(":")
        assert host == "127.0.0.1" and container_port == port  # published on the host's loopback only
        host_ports.add(host_port)
        store = service["environment"]["SYNCD_STORE__URL"]
        assert store.startswith("postgresql") and "@postgres:5432/" in store
        assert (ROOT / "deploy" / service["build"]["context"] / service["build"]["dockerfile"]).is_file()
    assert len(names) == len(host_ports) == 3


def test_no_secret_is_written_in_the_file() -> None:
    spec = compose()
    for service in workers(spec["services"]).values():
        assert service["env_file"] == ["syncd.env"]  # the API keys come from there
        assert not any("API_KEY" in name for name in service["environment"])
    text = COMPOSE.read_text(encoding="utf-8")
    assert not re.search(r"sk_\w{6,}", text)
    # The database password is interpolated from the environment (deploy/.env), never a literal.
    assert spec["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD")


def test_workers_use_only_options_syncd_worker_has() -> None:
    options = worker_options()
    if options is None:
        pytest.skip("this build has no `syncd worker` command")
    for service in workers(compose()["services"]).values():
        used = {word for word in service["command"] if word.startswith("--")}
        assert used <= options, used - options


def _docker_compose() -> bool:
    if shutil.which("docker") is None:
        return False
    done = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30)
    return done.returncode == 0


@pytest.mark.skipif(not _docker_compose(), reason="docker compose not installed")
def test_docker_compose_accepts_the_file(tmp_path: Path) -> None:
    deploy = tmp_path / "deploy"
    deploy.mkdir()
    shutil.copy(COMPOSE, deploy / "compose.yaml")
    (deploy / "syncd.env").write_text("SYNCD_INVOICED__API_KEY=placeholder\n", encoding="utf-8")
    done = subprocess.run(
        ["docker", "compose", "-f", str(deploy / "compose.yaml"), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin:/usr/local/bin", "POSTGRES_PASSWORD": "placeholder"},
    )
    assert done.returncode == 0, done.stderr
