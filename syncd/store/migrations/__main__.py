"""`python -m syncd.store.migrations "what changed"`: autogenerate the next migration;
`python -m syncd.store.migrations --sqlite-snapshot`: rewrite the schema a new SQLite store
is created with (after adding or editing a migration). For developers."""

from __future__ import annotations

import sys

from syncd.store.migrate import new_revision, write_sqlite_snapshot

USAGE = 'usage: python -m syncd.store.migrations "what changed" | --sqlite-snapshot\n'


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not argv[0].strip():
        sys.stderr.write(USAGE)
        return 2
    if argv[0] == "--sqlite-snapshot":
        sys.stdout.write(f"wrote {write_sqlite_snapshot()}\n")
        return 0
    path = new_revision(argv[0])
    sys.stdout.write(
        f"wrote {path}: review it, run `python -m syncd.store.migrations --sqlite-snapshot`, then tests/store\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
