"""Raw records and output rows as stored: today's format (Zstandard, tags 0xF5 / 0xF6) round-trips
exactly, and every format written before it (zlib, tags 0x01 / 0x02; untagged text) reads back."""

from __future__ import annotations

import json
import threading
from decimal import Decimal

import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.sandbox.data import SandboxData
from syncd.store import store as store_module
from syncd.store.store import dumps, loads, pack, pack_row, unpack, unpack_row
from tests.store import old_pack

# Unicode in every plane but lone surrogates (no UTF-8 for those: neither format ever took them).
_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=300)
_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.decimals(allow_nan=False, allow_infinity=False, places=2)
    | _TEXT,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(_TEXT, inner, max_size=6),
    max_leaves=30,
)


@st.composite
def json_texts(draw: st.DrawFn) -> str:
    """A record's text as `dumps` writes it (non-ASCII escaped), or JSON with raw UTF-8 in it."""
    value = draw(_JSON)
    if draw(st.booleans()):
        return dumps(value)
    return json.dumps(value, ensure_ascii=False, default=str)


# Written by this format's first version (pack / pack_row): whatever compresses them later,
# these bytes must read back as these texts.
RECORD = '{"amount":1.50,"customer":7,"id":42,"name":"Zo\\u00eb \\u2028","notes":"Grüße, 東京","object":"invoice","status":"draft"}'
RECORD_ZSTD = bytes.fromhex(
    "f5207b7d02001403223a312e3530372c2234325a6f5c7530306562205c7532303238224772c3bcc39f652c20e69db1e4baac"
    "6472616674227d08002d6403e36402c023f80263de35c45c0db308dc2099836142ac01"
)
RECORD_ZLIB = bytes.fromhex(
    "0143a44a433d5350aa8467037348c2323182c5a952547e4ca981416a92424ca991819105d00bd04854722f3abce7f0fc541d"
    "856773373ed9b506288325eee06100c93cb500"
)
ROW = (
    '{"customer":"7","date":"2024-01-01","kind":"payment","narration":"payment INV-000042","payee":"Zoë",'
    '"postings":[["Assets:Bank:Checking",1.50,"USD","",""]]}'
)
ROW_ZSTD = bytes.fromhex(
    "f6209c550100703734325a6fc3ab222c312e355d7d0800d46659ab8923389d2b513ac718774682afcc41505efc470e02"
)
ROW_ZLIB = bytes.fromhex(
    "024329c9cd81d183a72447141bc8052f7a1e3331029a02140497aa51f9875783b8584a5694140d2c45f54cd10b2e00"
)


def test_records_and_rows_of_every_format_ever_written_read_back() -> None:
    for stored in (RECORD_ZSTD, RECORD_ZLIB, RECORD.encode()):
        assert unpack(stored) == unpack(memoryview(stored)) == RECORD.encode()
        assert loads(stored) == loads(RECORD)
    for stored in (ROW_ZSTD, ROW_ZLIB):
        assert unpack_row(stored) == unpack_row(memoryview(stored)) == ROW
    line = "INV-1,Zoë,1.50\r\n"  # a short text: its bytes, untagged, then as now
    assert unpack_row(line.encode()) == line


def test_the_new_format_is_a_tag_then_a_magicless_zstd_frame_against_the_old_dictionary() -> None:
    """The tags are bytes no UTF-8 text starts with; the dictionaries are the zlib format's,
    byte for byte (the frozen copy's): one set of sample bytes for both formats."""
    assert store_module._PACKED_ZSTD == b"\xf5" and store_module._ROW_PACKED_ZSTD == b"\xf6"
    assert store_module._ZDICT == old_pack._ZDICT and store_module._ROW_ZDICT == old_pack._ROW_ZDICT
    for text, packed, zdict in (
        (RECORD, pack(RECORD), old_pack._ZDICT),
        (ROW, pack_row(ROW), old_pack._ROW_ZDICT),
    ):
        raw = zstandard.ZstdCompressionDict(zdict, dict_type=zstandard.DICT_TYPE_RAWCONTENT)
        frame = zstandard.ZstdDecompressor(dict_data=raw, format=zstandard.FORMAT_ZSTD1_MAGICLESS)
        assert frame.decompress(packed[1:]) == text.encode()
    assert pack(RECORD)[:1] == b"\xf5" and pack_row(ROW)[:1] == b"\xf6"
    for first in range(0x110000):  # the first byte of any character's UTF-8
        if not 0xD800 <= first <= 0xDFFF:
            assert chr(first).encode()[0] < 0xF5


def test_seeded_invoices_pack_to_under_a_fifth_of_their_text_smaller_than_before() -> None:
    data = SandboxData.seeded(1, 20, 100, 50)
    texts = [dumps(loads(data.blob("invoices", invoice["id"]))) for invoice in data.list("invoices")]
    packed = sum(len(pack(text)) for text in texts)
    assert packed < sum(len(old_pack.pack(text)) for text in texts)
    assert packed < sum(map(len, texts)) / 5


@settings(max_examples=300, deadline=None)
@given(json_texts())
def test_a_record_round_trips_exactly_in_the_new_format_and_reads_back_from_the_old(text: str) -> None:
    packed = pack(text)
    assert packed[:1] == b"\xf5"
    assert unpack(packed) == unpack(memoryview(packed)) == text.encode()
    assert unpack(old_pack.pack(text)) == text.encode()


@settings(max_examples=300, deadline=None)
@given(st.one_of(json_texts(), _TEXT, _TEXT.map(lambda t: "\x02" + t), st.text(min_size=361, max_size=900)))
def test_a_row_round_trips_exactly_in_the_new_format_and_reads_back_from_the_old(text: str) -> None:
    packed = pack_row(text)
    assert unpack_row(packed) == unpack_row(memoryview(packed)) == text
    packed_before = old_pack.pack_row(text)
    assert unpack_row(packed_before) == text
    if packed_before[:1] == b"\x02":  # what the old format deflated, the new one compresses
        assert packed[:1] == b"\xf6"
    else:  # and a short text stays its bytes, as it was
        assert packed == packed_before == text.encode()


def test_threads_pack_and_unpack_at_once_each_with_its_own_compressor() -> None:
    """A Zstandard (de)compressor is not safe to share across threads: each thread has its own."""
    texts = [dumps({"id": i, "name": "Zoë" * (i % 7), "total": Decimal(i) / 100}) for i in range(300)]
    start = threading.Barrier(4)
    failures: list[str] = []
    seen: list[object] = []

    def work() -> None:
        seen.append(store_module._ZSTD.compress)
        start.wait()
        for _ in range(5):
            for text in texts:
                if unpack(pack(text)) != text.encode() or unpack_row(pack_row(text)) != text:
                    failures.append(text)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert len({id(c.__self__) for c in seen}) == 4  # type: ignore[attr-defined]
