"""Which database schema a store lives in (PostgreSQL), so that migrations look only there.

Several stores (or other applications) may share one PostgreSQL database, each in its own
schema chosen by the URL's `search_path` (`?options=-csearch_path=tenant,shared`). Tables
are created in the first schema of the search_path that exists (`current_schema()`), but a
table that is only looked up by name would be found in any schema of the path: another
store's. So the store's schema is fixed once, and its tables are inspected there only.

A missing first schema is refused, with one exception: the schema of an account
(`[accounts.NAME]`, syncd.accounts) is created on first use. Its URL says so itself, with
the custom setting `-csyncd.create_schema=syncd_NAME` beside the search_path, so that
whatever process opens the store (a sync, a daemon, a worker) may create it, and a
search_path written by hand never is: a typo there must not start an empty store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from syncd.errors import StoreError

if TYPE_CHECKING:  # imported where used: syncd.accounts reads CREATE_SCHEMA at every start
    from sqlalchemy import Connection

# A custom PostgreSQL setting (any dotted name is allowed in a connection's options).
CREATE_SCHEMA = "syncd.create_schema"


def first_in_search_path(search_path: str) -> str | None:
    """The first schema named by a `search_path` setting, as PostgreSQL reads it (unquoted
    names folded to lower case, `"a""b"` is `a"b`); None when the setting names none."""
    name: list[str] = []
    quoted = False
    i = 0
    while i < len(search_path):
        char = search_path[i]
        if quoted:
            if char == '"' and search_path[i + 1 : i + 2] == '"':
                name.append('"')
                i += 1
            elif char == '"':
                quoted = False
            else:
                name.append(char)
        elif char == '"':
            quoted = True
        elif char == ",":
            break
        elif not char.isspace():
            name.append(char.lower())
        i += 1
    return "".join(name) or None


def store_schema(conn: Connection, where: str, *, create: bool = True) -> str | None:
    """The schema the store's tables live in: None on SQLite (its one database); on PostgreSQL
    `current_schema()`, refused when the first schema the search_path names does not exist
    (its tables would silently land in, and be read from, the next one: another store's),
    unless the URL allows creating it (an account's schema; see the module docstring).
    With `create` false such a schema is named but left uncreated (a dry run).
    `where` names the store in the error (a URL without its password)."""
    if conn.dialect.name != "postgresql":
        return None
    from sqlalchemy import text

    current, search_path, database, creatable = conn.execute(
        text(
            "SELECT current_schema(), current_setting('search_path'), current_database(), "
            f"current_setting('{CREATE_SCHEMA}', true)"
        )
    ).one()
    first = first_in_search_path(search_path)
    if first is not None and first == creatable and first != current:
        if not create:
            return first
        _create(conn, first)
        current = conn.execute(text("SELECT current_schema()")).scalar()
    # "$user" is the session user's schema if there is one, else skipped (PostgreSQL's default).
    if first is not None and first not in ("$user", current):
        raise StoreError(
            f'store.url: schema "{first}" (first in the search_path of {where}) does not exist '
            f'in database {database}: create it (CREATE SCHEMA "{first}") or change the search_path'
        )
    if current is None:
        raise StoreError(
            f"store.url: no schema of the search_path ({search_path}) of {where} exists in database {database}"
        )
    return str(current)


def _create(conn: Connection, schema: str) -> None:
    """CREATE SCHEMA IF NOT EXISTS, committed; another process creating it at the same moment
    is no error (IF NOT EXISTS alone does not cover a creation not yet committed: the second
    one then fails on pg_namespace's unique index once the first commits)."""
    import structlog
    from sqlalchemy import text
    from sqlalchemy.exc import IntegrityError

    quoted = conn.dialect.identifier_preparer.quote_identifier(schema)
    try:
        conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {quoted}"))
        conn.commit()
    except IntegrityError:
        conn.rollback()  # the other one's is there now
        return
    structlog.get_logger(__name__).info("store.schema_created", schema=schema)
