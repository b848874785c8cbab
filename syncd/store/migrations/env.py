"""Alembic environment: run by `syncd.store.migrate` (online, on a locked connection) and by
`python -m syncd.store.migrations` / offline `--sql` when a developer adds a migration."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine
from sqlmodel import SQLModel

import syncd.store.models  # noqa: F401  (registers the tables on SQLModel.metadata)
from syncd.store.migrate import VERSION_TABLE

config = context.config


def _run(connection: Connection | None = None) -> None:
    # render_as_batch: SQLite cannot ALTER most things; batch mode copies the table instead.
    context.configure(
        connection=connection,
        url=None if connection is not None else config.get_main_option("sqlalchemy.url"),
        literal_binds=connection is None,
        target_metadata=SQLModel.metadata,
        render_as_batch=True,
        compare_type=True,
        # The store's schema, fixed by syncd.store.migrate (None: the connection's default).
        version_table=VERSION_TABLE,
        version_table_schema=config.attributes.get("version_table_schema"),
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    _run()
elif (given := config.attributes.get("connection")) is not None:
    _run(given)  # syncd's connection: it already holds the migration lock in its transaction
else:
    engine = create_engine(str(config.get_main_option("sqlalchemy.url")))
    with engine.begin() as conn:
        _run(conn)
    engine.dispose()
