"""`pack_row`, which stores every CSV line, gives the very bytes it gave before (frozen below)."""

from __future__ import annotations

import random
from typing import Any

from syncd.store.store import _ROW_LONG, _ROW_PACKED_ZSTD, _ROW_ZSTD, pack_row, unpack_row


def _old_pack_row(text: str) -> bytes:
    """`pack_row` before #14's sixth round. Frozen: do not edit."""
    if not text.startswith(("{", "\x02")) and len(text) <= _ROW_LONG:
        return text.encode()
    return _ROW_PACKED_ZSTD + _ROW_ZSTD.compress(text.encode())


def _outcome(pack: Any, text: str) -> Any:
    try:
        return pack(text)
    except Exception as exc:  # compared, not swallowed
        return type(exc).__name__


def test_pack_row_gives_the_bytes_it_gave_before() -> None:
    rng = random.Random(14)
    alphabet = ["a", "Z", "0", ",", '"', "{", "}", "\x02", "\x00", "é", "€", "😀", "\ud800", "\n", "-"]
    texts = ["", "{", "\x02", "{}", "Abcd1,2,3", "é", "\ud800", "a" * _ROW_LONG, "{" + "a" * _ROW_LONG]
    for _ in range(5000):
        size = rng.choice([0, 1, 2, rng.randint(3, 200), rng.randint(_ROW_LONG - 2, _ROW_LONG + 2), 2000])
        weights = None if rng.random() < 0.2 else [20, 20, 20, 5, 1, 1, 1, 1, 1, 1, 1, 1, 0.1, 1, 2]
        texts.append("".join(rng.choices(alphabet, weights, k=size)))
    for text in texts:
        got = _outcome(pack_row, text)
        assert got == _outcome(_old_pack_row, text), text
        if isinstance(got, bytes):
            assert unpack_row(got) == text
