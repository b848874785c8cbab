"""Finding connectors: the `syncd.connectors` entry-point group, and building them from config."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from syncd.config import Settings
from syncd.errors import ConfigError, SyncdError
from syncd.mapping import MappingSet, load_mapping
from syncd.plugin import Connector, ConnectorContext, ConnectorSettings
from syncd.store import Store

GROUP = "syncd.connectors"


def installed() -> dict[str, EntryPoint]:
    """Connector entry points by name."""
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def connector_class(name: str, *, config_path: str | None = None) -> type[Connector]:
    """The connector class registered as `name`; ConfigError lists the installed ones."""
    eps = installed()
    if name not in eps:
        names = ", ".join(sorted(eps)) or "none"
        raise ConfigError(
            f"unknown connector {name!r}; installed: {names}", path=config_path, key=f"connectors.{name}"
        )
    cls = eps[name].load()
    if not (isinstance(cls, type) and issubclass(cls, Connector)):
        raise ConfigError(f"entry point {eps[name].value} is not a syncd Connector", key=f"connectors.{name}")
    return cls


@dataclass
class ConnectorSpec:
    """A configured, validated connector: class, settings and mapping file path."""

    name: str
    cls: type[Connector]
    settings: ConnectorSettings
    mapping_path: Path

    def rule(self, table: str, column: str, value: Any, *, prefix: bool = False) -> str | None:
        """The connector's check of a mapping's constant outputs (see `Connector.check_constant`)."""
        return self.cls.check_constant(self.settings, table, column, value, prefix=prefix)


def _config_name(settings: Settings) -> str | None:
    return str(settings.source) if settings.source else None


def mapping_path(settings: Settings, name: str, given: Path | None) -> Path:
    """Where a connector's mapping lives: as configured, else mappings/NAME.toml."""
    candidates = [settings.resolve(given)] if given else [settings.resolve(Path("mappings") / f"{name}.toml")]
    if given is None:
        candidates.append(Path("mappings") / f"{name}.toml")
    for path in candidates:
        if path.exists():
            return path
    raise ConfigError(
        f"mapping file {candidates[0]} not found",
        path=_config_name(settings),
        key=f"connectors.{name}.mapping",
    )


def configured(settings: Settings, *, only_enabled: bool = True) -> list[ConnectorSpec]:
    """Every connector section of the config, validated by the connector's own model."""
    specs = []
    for name, section in settings.connectors.items():
        cls = connector_class(name, config_path=_config_name(settings))
        try:
            conn_settings = cls.settings_model.model_validate(section)
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(p) for p in first["loc"])
            raise ConfigError(
                first["msg"], path=_config_name(settings), key=f"connectors.{name}.{loc}"
            ) from None
        if only_enabled and not conn_settings.enabled:
            continue
        specs.append(
            ConnectorSpec(name, cls, conn_settings, mapping_path(settings, name, conn_settings.mapping))
        )
    return specs


def load_mappings(specs: list[ConnectorSpec]) -> dict[str, MappingSet]:
    """Load and check every mapping; raise with all errors of all files."""
    mappings, errors = {}, []
    for spec in specs:
        try:
            mappings[spec.name] = load_mapping(spec.mapping_path, dict(spec.cls.tables) or None, spec.rule)
        except SyncdError as exc:
            errors.append(str(exc))
    if errors:
        raise ConfigError("invalid mapping:\n" + "\n".join(errors))
    return mappings


def build(
    spec: ConnectorSpec, store: Store, settings: Settings, mapping: MappingSet | None = None
) -> Connector:
    """Instantiate a connector with its slice of the store and its mapping's output columns."""
    context = ConnectorContext(
        name=spec.name,
        outputs=store.outputs(spec.name),
        state_dir=settings.state_root(),
        columns=mapping.columns() if mapping is not None else {},
        fill_only=mapping.fill_only() if mapping is not None else {},
    )
    return spec.cls(spec.settings, context)
