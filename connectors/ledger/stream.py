"""Rendering a journal of any size in bounded memory: an external merge sort of entry texts.

The journal is a header and then each entry's block of text, in `Entry.sort_key` order.
Entries arrive in store order as items: a sort key (a string that sorts as `Entry.sort_key`
does, see `rows.sort_key`), the entry's block, and for Beancount its fields (its account names
are only final once every entry has been seen). They are gathered in batches; each batch is
sorted and, when more follow, spilled as one sorted run (a JSON line per item) to a nameless
temp file beside the journal, while the header's facts (accounts' first use, commodities,
tags) are collected by whoever reads the entries. The runs are then merged (`heapq.merge` is
stable: an earlier run wins a tie, so the order is exactly `sorted`'s) and the blocks streamed
into the atomic replacement. The text is byte for byte `render.render`'s, which stays the
in-memory reference.
"""

from __future__ import annotations

import hashlib
import heapq
import os
import tempfile
from collections.abc import Iterable, Iterator
from operator import itemgetter
from pathlib import Path
from typing import IO

import msgspec

from connectors.ledger import rows
from connectors.ledger.journal import Entry
from connectors.ledger.render import (
    Facts,
    beancount_accounts,
    beancount_base,
    entry_block,
    journal_head,
)
from syncd.files import replaced

BATCH = 5000  # entries sorted in memory at a time (a few MB)
_READ = 1 << 15  # bytes read from a run at a time, per run being merged
_WRITE = 1 << 16  # characters gathered per write to the journal

# An entry on its way to the journal: its sort key, its text ("" when it can only be rendered
# once every entry is known) and, in Beancount, its fields as JSON (else "").
Item = tuple[str, str, str]

_KEY = itemgetter(0)
_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(Item)
_FIELDS = msgspec.json.Decoder(rows.Fields)


class _Unchanged(Exception):
    """The new text equals the file's: abandon the replacement."""


def _run(fd: int, start: int, end: int) -> Iterator[Item]:
    """The items of the run at bytes [start, end) of the spill file, read as needed."""
    pos, rest = start, b""
    while pos < end:
        data = os.pread(fd, min(_READ, end - pos), pos)
        if not data:
            raise OSError(f"spill file ended at byte {pos} of {end}")
        pos += len(data)
        cut = data.rfind(b"\n") + 1
        if cut:
            yield from _DECODER.decode_lines(rest + data[:cut])
            rest = data[cut:]
        else:
            rest += data
    if rest:
        yield from _DECODER.decode_lines(rest)


def _sorted_items(items: Iterable[Item], spill: IO[bytes], batch: int) -> Iterator[Item]:
    """`items` in key order (stable); all of them are read before this returns."""
    runs: list[tuple[int, int]] = []
    pending: list[Item] = []
    for item in items:
        pending.append(item)
        if len(pending) >= batch:
            pending.sort(key=_KEY)
            start = spill.tell()
            spill.write(_ENCODER.encode_lines(pending))
            runs.append((start, spill.tell()))
            pending = []
    pending.sort(key=_KEY)
    if not runs:
        return iter(pending)
    spill.flush()
    fd = spill.fileno()
    # The last batch stays in memory as the last run, so it loses the ties it must lose.
    return heapq.merge(*(_run(fd, s, e) for s, e in runs), pending, key=_KEY)


def entry_items(entries: Iterable[Entry], dialect: str, facts: Facts) -> Iterator[Item]:
    """Entries as items, each added to `facts` on the way."""
    for e in entries:
        facts.add(e)
        yield item_of(e, dialect)


def item_of(e: Entry, dialect: str) -> Item:
    """The item of an entry rendered now (Beancount: at the end, once names are known)."""
    key = rows.entry_sort_key(e)
    if dialect == "beancount":
        return key, "", rows.fields_json(e)
    return key, entry_block(e, dialect, {}), ""


def _blocks(ordered: Iterable[Item], dialect: str, facts: Facts) -> Iterator[str]:
    """Each item's text, with Beancount's final account names."""
    if dialect != "beancount":
        for item in ordered:
            yield item[1]
        return
    names = beancount_accounts(facts.first)
    # Blocks were written with each account's name as if no other collided with it.
    collided = frozenset(a for a, n in names.items() if n != beancount_base(a))
    for _, block, fields in ordered:
        if block:
            if not collided:
                yield block
                continue
            f = _FIELDS.decode(fields)
            if not any(rows.text_of(p[0], block) in collided for p in f.postings):
                yield block
                continue
        else:
            f = _FIELDS.decode(fields)
        yield entry_block(rows.entry_of(f, block), dialect, names)


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
    items = entry_items(entries, dialect, facts)
    return render_items(path, items, facts, dialect, declared=declared, stamp=stamp, batch=batch)


def render_items(
    path: Path,
    items: Iterable[Item],
    facts: Facts,
    dialect: str,
    *,
    declared: frozenset[str] = frozenset(),
    stamp: str = "",
    batch: int | None = None,
) -> bool:
    """`render_file` of entries given as items; `facts` is complete once `items` is exhausted."""
    digest = hashlib.sha256()
    path.parent.mkdir(parents=True, exist_ok=True)
    # Nameless (O_TMPFILE where the system has it): a killed render leaves nothing behind.
    with tempfile.TemporaryFile(dir=path.parent) as spill:
        ordered = _sorted_items(items, spill, batch or BATCH)  # all read: facts complete
        try:
            with replaced(path, "wb") as fh:

                def put(text: str) -> None:
                    data = text.encode("utf-8")
                    digest.update(data)
                    fh.write(data)

                buf = ["\n".join(journal_head(facts, dialect, declared, stamp))]
                size = 0
                for block in _blocks(ordered, dialect, facts):
                    buf.append(block)
                    size += len(block)
                    if size >= _WRITE:
                        put("\n".join(buf))
                        buf, size = [""], 0  # the next join starts with the newline between
                buf.append("")
                put("\n".join(buf))
                if _same_file(path, fh.tell(), digest.digest()):
                    raise _Unchanged
        except _Unchanged:
            return False
    return True
