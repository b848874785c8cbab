"""Which database schema a store lives in (PostgreSQL), so that migrations look only there.

Several stores (or other applications) may share one PostgreSQL database, each in its own
schema chosen by the URL's `search_path` (`?options=-csearch_path=tenant,shared`). Tables
are created in the first schema of the search_path that exists (`current_schema()`), but a
table that is only looked up by name would be found in any schema of the path: another
store's. So the store's schema is fixed once, and its tables are inspected there only.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

from syncd.errors import StoreError


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


def store_schema(conn: Connection, where: str) -> str | None:
    """The schema the store's tables live in: None on SQLite (its one database); on PostgreSQL
    `current_schema()`, refused when the first schema the search_path names does not exist
    (its tables would silently land in, and be read from, the next one: another store's).
    `where` names the store in the error (a URL without its password)."""
    if conn.dialect.name != "postgresql":
        return None
    current, search_path, database = conn.execute(
        text("SELECT current_schema(), current_setting('search_path'), current_database()")
    ).one()
    first = first_in_search_path(search_path)
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
