"""Stores in different schemas of one PostgreSQL database stay apart, whatever the search_path
also names; another application's Alembic table does not make syncd refuse its store."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy
from sqlalchemy import inspect, text

from syncd.errors import StoreError
from syncd.store import Store
from syncd.store.migrate import VERSION_TABLE, head, pending
from syncd.store.schema import first_in_search_path
from tests.conftest import PG_URL, _pg_available


def _url(*search_path: str) -> str:
    return f"{PG_URL}?options=-csearch_path%3D{'%2C'.join(search_path)}"


@pytest.fixture
def schemas() -> Iterator[Callable[[], str]]:
    """Makes uniquely named schemas in the test database; drops them afterwards."""
    if not _pg_available():
        pytest.skip("PostgreSQL not reachable")
    admin = sqlalchemy.create_engine(PG_URL)
    made: list[str] = []

    def make() -> str:
        name = f"t_{uuid.uuid4().hex[:10]}"
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{name}"'))
        made.append(name)
        return name

    yield make
    with admin.begin() as conn:
        for name in made:
            conn.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
    admin.dispose()


@pytest.mark.postgres
def test_a_store_whose_search_path_also_names_another_stores_schema_keeps_its_own_tables(
    schemas: Callable[[], str],
) -> None:
    shared, tenant = schemas(), schemas()
    a = Store.open(_url(shared))
    a.set_cursor("invoices", "", 111)
    a.close()

    b = Store.open(_url(tenant, shared))
    try:
        assert b.cursors("invoices") == {}  # not A's
        b.set_cursor("invoices", "", 999)
        assert pending(b.engine)[0].revision == head()
    finally:
        b.close()

    a = Store.open(_url(shared))
    try:
        assert a.cursors("invoices") == {"": 111}  # B did not move A's cursor
    finally:
        a.close()
    b = Store.open(_url(tenant, shared))
    try:
        assert b.cursors("invoices") == {"": 999}
    finally:
        b.close()
    engine = sqlalchemy.create_engine(PG_URL)
    with engine.connect() as conn:
        for schema in (shared, tenant):
            tables = set(inspect(conn).get_table_names(schema=schema))
            assert {"cursor", "meta", VERSION_TABLE} <= tables
    engine.dispose()


@pytest.mark.postgres
def test_another_applications_alembic_version_does_not_clash(schemas: Callable[[], str]) -> None:
    shared, tenant = schemas(), schemas()
    engine = sqlalchemy.create_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(text(f'CREATE TABLE "{shared}".alembic_version (version_num varchar(32) PRIMARY KEY)'))
        conn.execute(text(f"INSERT INTO \"{shared}\".alembic_version VALUES ('a1b2c3_other_app')"))
    # In its own schema, with the other application's on the search_path; then beside it.
    for url in (_url(tenant, shared), _url(shared)):
        store = Store.open(url)
        try:
            store.set_cursor("invoices", "", 5)
            assert store.cursors("invoices") == {"": 5}
            assert pending(store.engine)[0].revision == head()
        finally:
            store.close()
    with engine.connect() as conn:
        other = conn.execute(text(f'SELECT version_num FROM "{shared}".alembic_version')).scalars().all()
    engine.dispose()
    assert other == ["a1b2c3_other_app"]  # left as the other application keeps it


@pytest.mark.postgres
def test_a_search_path_whose_first_schema_does_not_exist_is_refused_on_one_line(
    schemas: Callable[[], str],
) -> None:
    shared = schemas()
    missing = f"t_{uuid.uuid4().hex[:10]}"
    with pytest.raises(StoreError) as raised:
        Store.open(_url(missing, shared))
    message = str(raised.value)
    assert message.startswith(f'store.url: schema "{missing}"') and "does not exist" in message
    assert "\n" not in message
    engine = sqlalchemy.create_engine(PG_URL)
    with engine.connect() as conn:
        assert inspect(conn).get_table_names(schema=shared) == []  # nothing landed in the next one
    engine.dispose()


def test_the_first_schema_of_a_search_path_is_read_as_postgresql_does() -> None:
    assert first_in_search_path("tenant_b,public") == "tenant_b"
    assert first_in_search_path(' "$user", public') == "$user"
    assert first_in_search_path('Tenant, "Mixed""Case"') == "tenant"
    assert first_in_search_path('"Mixed""Case", public') == 'Mixed"Case'
    assert first_in_search_path('"a,b",c') == "a,b"
    assert first_in_search_path("") is None
