"""Errors in `SYNCD_*` environment overrides, named by the variable that holds the bad value.

The value itself is never shown: `SYNCD_INVOICED='{"api_key": ...'` may hold the key.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence

from pydantic_settings import SettingsError

from syncd.errors import ConfigError

PREFIX = "SYNCD_"


def _set(environ: Mapping[str, str]) -> dict[str, str]:
    # pydantic-settings reads the environment case-insensitively.
    return {name.upper(): name for name in environ if name.upper().startswith(PREFIX)}


def env_source(loc: Sequence[int | str], environ: Mapping[str, str] | None = None) -> str | None:
    """The environment variable that gave the value at `loc` (or a table holding it), if one did."""
    names = _set(os.environ if environ is None else environ)
    parts = [str(p).upper() for p in loc]
    for end in range(len(parts), 0, -1):
        name = PREFIX + "__".join(parts[:end])
        if name in names:
            return names[name]
    return None


def unreadable(exc: SettingsError, environ: Mapping[str, str] | None = None) -> ConfigError:
    """A ConfigError for a variable pydantic-settings could not parse (a table given as non-JSON)."""
    field = re.search(r'field "([^"]+)"', str(exc))
    top = (PREFIX + field[1]).upper() if field else PREFIX
    names = sorted(
        n for upper, n in _set(os.environ if environ is None else environ).items() if upper.startswith(top)
    )
    where = " or ".join(names) or f"a {top}* variable"
    return ConfigError(
        "cannot be read: a table is set as JSON (e.g. '{\"enabled\": false}') "
        "or key by key (SYNCD_SECTION__KEY=value)",
        path=f"environment variable {where}",
    )
