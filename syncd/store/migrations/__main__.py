"""`python -m syncd.store.migrations "what changed"`: autogenerate the next migration (developers)."""

from __future__ import annotations

import sys

from syncd.store.migrate import new_revision


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not argv[0].strip():
        sys.stderr.write('usage: python -m syncd.store.migrations "what changed"\n')
        return 2
    path = new_revision(argv[0])
    sys.stdout.write(f"wrote {path}: review it, then run tests/store\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
