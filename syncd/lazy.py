"""Packages whose names are imported on first use, so a light command loads no heavy module."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any


def exports(package: str, where: Mapping[str, str]) -> Callable[[str], Any]:
    """A module `__getattr__` (PEP 562) for `package`: each name of `where` is imported from
    the module it names the first time it is read, then kept as a plain attribute."""

    def __getattr__(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(where[name]), name)
        setattr(sys.modules[package], name, value)  # once: later look-ups are plain attribute reads
        return value

    return __getattr__


@contextmanager
def hidden(*names: str) -> Iterator[None]:
    """While a dependency is imported, the modules `names` look not installed, so the optional
    extras it would import at once (and syncd never uses) are skipped; already imported ones
    stay. Afterwards they import as usual."""
    added = [name for name in names if name not in sys.modules]
    for name in added:
        sys.modules[name] = None  # type: ignore[assignment]  # `import name` raises ImportError
    try:
        yield
    finally:
        for name in added:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]
