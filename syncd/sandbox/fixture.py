"""pytest plugin: `make_sandbox(**config)` and `sandbox`, served in-process on a free loopback port."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from syncd.sandbox.config import SandboxConfig
from syncd.sandbox.server import Sandbox

SMALL = {"customers": 10, "invoices": 60, "transactions": 25}


@pytest.fixture
def make_sandbox() -> Iterator[Callable[..., Sandbox]]:
    """A factory: `make_sandbox(invoices=300, p429=0.1)` -> a started Sandbox, stopped at teardown."""
    started: list[Sandbox] = []

    def factory(**config: Any) -> Sandbox:
        sandbox = Sandbox(SandboxConfig(**{**SMALL, **config}))
        sandbox.start(host="127.0.0.1", port=0)
        started.append(sandbox)
        return sandbox

    yield factory
    for sandbox in started:
        sandbox.stop()


@pytest.fixture
def sandbox(make_sandbox: Callable[..., Sandbox]) -> Sandbox:
    """A small started sandbox (10 customers, 60 invoices, 25 transactions)."""
    return make_sandbox()
