"""Each test module of `syncd worker` gets its own PostgreSQL database, dropped at the end."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from tests.conftest import PG_URL, _pg_available


@pytest.fixture(scope="module")
def job_db() -> Iterator[str]:
    """A fresh database (SQLAlchemy URL) holding the job queue and every account's schema."""
    if not _pg_available():
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is not reachable at {PG_URL} (CI must start it)")
        pytest.skip("PostgreSQL not reachable")
    import psycopg

    name = f"syncd_{uuid.uuid4().hex[:10]}"
    admin = PG_URL.replace("+psycopg", "")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield PG_URL.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
