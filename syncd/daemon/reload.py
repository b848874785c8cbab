"""Configuration and mapping files: load them whole, watch them, keep the last good set.

A reload (SIGHUP, or a changed file on disk) builds a complete new `Loaded` or fails;
on failure the daemon keeps running on the previous one, so a half-saved or mistyped
file never stops the syncs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from syncd import preflight, registry
from syncd.accounts import DEFAULT, select_account
from syncd.config import DEFAULT_CONFIG, Settings, load_settings
from syncd.errors import ConfigError
from syncd.mapping import MappingSet

# (mtime_ns, size, inode) or None when missing: an editor's rename-over counts as a change.
FileStamp = tuple[int, int, int] | None


@dataclass(frozen=True)
class Loaded:
    """One consistent configuration: settings, every enabled connector's mapping, watched files."""

    settings: Settings
    mappings: dict[str, MappingSet]
    files: tuple[Path, ...]


def config_file(config_path: Path | str | None) -> Path:
    """The configuration file the daemon reads (and watches)."""
    return Path(config_path) if config_path is not None else DEFAULT_CONFIG


def build(settings: Settings, config_path: Path | str | None) -> Loaded:
    """Validate connectors and load their mappings; ConfigError names file:line:col."""
    preflight.check(settings)
    specs = registry.configured(settings)
    mappings = registry.load_mappings(specs)
    files = [config_file(config_path).resolve()]
    files.extend(spec.mapping_path.resolve() for spec in specs)
    return Loaded(settings, mappings, tuple(dict.fromkeys(files)))


def load(config_path: Path | str | None, account: str = DEFAULT) -> Loaded:
    """Read the configuration file and everything it refers to (of `account`: an account
    daemon reloads its own table; a config that gained or lost accounts is refused)."""
    if account == DEFAULT:
        settings = load_settings(config_path)
        if settings.accounts:
            raise ConfigError(
                "now names [accounts]: restart as syncd daemon --account NAME, one per account",
                path=str(config_file(config_path)),
            )
        return build(settings, config_path)
    return build(select_account(config_path, account), config_path)


def stamp(path: Path) -> FileStamp:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def snapshot(files: tuple[Path, ...]) -> dict[Path, FileStamp]:
    """What the watched files look like now."""
    return {path: stamp(path) for path in files}


class Watcher:
    """Notices changes to the watched files between polls."""

    def __init__(self, files: tuple[Path, ...]) -> None:
        self.files = files
        self.seen = snapshot(files)

    def changed(self) -> list[Path]:
        """Files that changed since the last call (or since `watch`); updates what was seen."""
        now = snapshot(self.files)
        changed = [p for p in self.files if now.get(p) != self.seen.get(p)]
        self.seen = now
        return changed

    def watch(self, files: tuple[Path, ...]) -> None:
        """Switch to a new set of files (after a reload), keeping stamps of those already seen."""
        now = snapshot(files)
        self.files = files
        self.seen = now
