"""Rendering a journal of any size in bounded memory: an external merge sort.

Entries arrive in store order. They are gathered in batches; each batch is sorted and,
when more follow, spilled as one sorted run (a JSON line per entry) to a nameless temp file
beside the journal, while the header's facts (accounts' first use, commodities, tags) are
collected. The runs are then merged (`heapq.merge` is stable: an earlier run wins a tie,
so the order is exactly `sorted`'s) and the lines streamed into the atomic replacement.
The text is byte for byte `render.render`'s, which stays the in-memory reference.
"""

from __future__ import annotations

import hashlib
import heapq
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

import msgspec

from connectors.ledger.journal import Entry
from connectors.ledger.render import Facts, journal_lines
from syncd.files import replaced

BATCH = 5000  # entries sorted in memory at a time (a few MB)
_READ = 1 << 15  # bytes read from a run at a time, per run being merged
_WRITE = 2048  # lines joined per write to the journal

_ENCODER = msgspec.json.Encoder(decimal_format="string")  # str(Decimal) reads back exactly
_DECODER = msgspec.json.Decoder(Entry)


class _Unchanged(Exception):
    """The new text equals the file's: abandon the replacement."""


def _run(fd: int, start: int, end: int) -> Iterator[Entry]:
    """The entries of the run at bytes [start, end) of the spill file, read as needed."""
    pos, rest = start, b""
    while pos < end:
        data = os.pread(fd, min(_READ, end - pos), pos)
        if not data:
            raise OSError(f"spill file ended at byte {pos} of {end}")
        pos += len(data)
        lines = (rest + data).split(b"\n")
        rest = lines.pop()
        for line in lines:
            yield _DECODER.decode(line)
    if rest:
        yield _DECODER.decode(rest)


def _sorted_entries(entries: Iterable[Entry], facts: Facts, spill: IO[bytes], batch: int) -> Iterator[Entry]:
    """`entries` in `Entry.sort_key` order (stable), adding each to `facts` on the way in."""
    runs: list[tuple[int, int]] = []
    pending: list[Entry] = []
    for e in entries:
        facts.add(e)
        pending.append(e)
        if len(pending) >= batch:
            pending.sort(key=Entry.sort_key)
            start = spill.tell()
            spill.write(b"\n".join(_ENCODER.encode(x) for x in pending) + b"\n")
            runs.append((start, spill.tell()))
            pending = []
    pending.sort(key=Entry.sort_key)
    if not runs:
        return iter(pending)
    spill.flush()
    fd = spill.fileno()
    # The last batch stays in memory as the last run, so it loses the ties it must lose.
    return heapq.merge(*(_run(fd, s, e) for s, e in runs), pending, key=Entry.sort_key)


def _same_file(path: Path, size: int, digest: bytes) -> bool:
    try:
        if path.stat().st_size != size:
            return False
        h = hashlib.sha256()
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
    except FileNotFoundError:
        return False
    return h.digest() == digest


def render_file(
    path: Path,
    entries: Iterable[Entry],
    dialect: str,
    *,
    declared: frozenset[str] = frozenset(),
    stamp: str = "",
    batch: int | None = None,
) -> bool:
    """Replace `path` with the journal of `entries` (any order) atomically, in bounded memory.

    The same bytes as `write_atomic(path, render(entries, ...))`, and False like it when the
    file already holds them (then it is left untouched). `batch`: entries per sorted run.
    """
    facts = Facts()
    digest = hashlib.sha256()
    path.parent.mkdir(parents=True, exist_ok=True)
    # Nameless (O_TMPFILE where the system has it): a killed render leaves nothing behind.
    with tempfile.TemporaryFile(dir=path.parent) as spill:
        ordered = _sorted_entries(entries, facts, spill, batch or BATCH)  # all read: facts complete
        try:
            with replaced(path, "wb") as fh:
                buf: list[str] = []
                for line in journal_lines(facts, ordered, dialect, declared, stamp):
                    buf.append(line)
                    if len(buf) >= _WRITE:
                        data = ("\n".join(buf) + "\n").encode("utf-8")
                        digest.update(data)
                        fh.write(data)
                        buf.clear()
                data = ("\n".join(buf) + "\n").encode("utf-8") if buf else b""
                digest.update(data)
                fh.write(data)
                if _same_file(path, fh.tell(), digest.digest()):
                    raise _Unchanged
        except _Unchanged:
            return False
    return True
