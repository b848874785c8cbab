"""Reading systemd unit files in tests: repeated keys (Environment=, EnvironmentFile=) keep every value."""

from __future__ import annotations

from pathlib import Path


def unit_section(unit: Path, section: str) -> dict[str, list[str]]:
    """One section of a unit file: key -> its values in order (comments and blank lines skipped)."""
    values: dict[str, list[str]] = {}
    current = None
    for raw in unit.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1]
        elif current == section:
            key, _, value = line.partition("=")
            values.setdefault(key.strip(), []).append(value.strip())
    return values


def worker_options() -> set[str] | None:
    """The options `syncd worker` accepts, or None while this build has no worker command."""
    import typer.main

    from syncd.cli import app

    group = typer.main.get_command(app)
    command = getattr(group, "commands", {}).get("worker")
    if command is None:
        return None
    return {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
