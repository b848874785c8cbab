"""Alembic migrations of the checkpoint store (shipped inside the package; see docs/architecture.md)."""
