"""An entry as the store keeps it: its fields, and its text already rendered.

A row is one line of JSON (the entry's fields, amounts as exact decimal text) and, after a
newline, the entry's block of journal text in the dialect named by the row's tag. The
render then copies blocks instead of building every entry again: per entry it reads the
fields it needs for the order, the header and the customer's current accounts, and only
re-renders an entry whose text no longer holds (a customer renamed since, another dialect,
a Beancount account name that collides, a row of an older version or stored as a dict).

A field the block holds verbatim (an account, most payees and memos) is kept as where the
block holds it, `[start, length]`, not a second time: the row is then about the size the
entry's JSON alone was.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from operator import itemgetter

import msgspec

from connectors.ledger.journal import KIND_ORDER, Entry, Parts, Posting, parts_of
from connectors.ledger.render import (
    RENDER_VERSION,
    beancount_base,
    beancount_block,
    iso_date,
    ledger_block,
)

__all__ = [
    "Fields",
    "Text",
    "decode",
    "encode",
    "encode_parts",
    "entry_of",
    "entry_sort_key",
    "fields_json",
    "fields_of",
    "sort_key",
    "tag",
    "text_of",
]

_DIALECT_CODE = {"hledger": "h", "ledger": "l", "beancount": "b"}

# A text, or where the row's block holds it: (start, length).
Text = str | tuple[int, int]


class Fields(msgspec.Struct, array_like=True, frozen=True):
    """An entry's fields as plain text: cheap to decode, exact to turn back into an `Entry`."""

    date: str
    kind: str
    object: str
    object_id: str
    payee: Text
    narration: Text
    postings: tuple[tuple[Text, str, str, Text, str], ...]  # account, amount, currency, comment, role
    meta: tuple[tuple[str, Text], ...]
    customer: str


_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(Fields)
_SHORTEST = 8  # characters: a shorter text is kept as it is ("[12,7]" would not be shorter)
_VALUE, _ACCOUNT, _COMMENT = (
    itemgetter(1),
    itemgetter(0),
    itemgetter(3),
)  # of a meta pair, of a posting's parts


def tag(dialect: str) -> str:
    """The start of a row whose text is in `dialect` as this version renders it (never "{")."""
    return f"L{RENDER_VERSION}{_DIALECT_CODE[dialect]}"


_TAGS = {d: tag(d) for d in _DIALECT_CODE}


def text_of(t: Text, block: str) -> str:
    """A field's text (`block`: the row's, where a reference points)."""
    if isinstance(t, str):
        return t
    return block[t[0] : t[0] + t[1]]


def fields_of(e: Entry, block: str = "") -> Fields:
    """`e`'s fields; with `block`, those it holds verbatim as references into it."""

    def ref(s: str) -> Text:
        if len(s) >= _SHORTEST and (at := block.find(s)) >= 0:
            return (at, len(s))
        return s

    return Fields(
        e.date.isoformat(),
        e.kind,
        e.object,
        e.object_id,
        ref(e.payee),
        ref(e.narration),
        tuple((ref(p.account), str(p.amount), p.currency, ref(p.comment), p.role) for p in e.postings),
        tuple((k, ref(v)) for k, v in e.meta),
        e.customer,
    )


def fields_json(e: Entry) -> str:
    """`fields_of(e)` (no references: it stands alone) as the JSON text a row holds."""
    return _ENCODER.encode(fields_of(e)).decode()


def entry_of(f: Fields, block: str = "") -> Entry:
    """The `Entry` a row's fields hold (`str(Decimal)` reads back to the same Decimal)."""
    return Entry(
        dt.date.fromisoformat(f.date),
        f.kind,
        f.object,
        f.object_id,
        text_of(f.payee, block),
        text_of(f.narration, block),
        tuple(
            Posting(text_of(a, block), Decimal(m), c, text_of(k, block), r) for a, m, c, k, r in f.postings
        ),
        tuple((k, text_of(v, block)) for k, v in f.meta),
        f.customer,
    )


class _BaseNames(dict[str, str]):
    """Beancount names before collisions are known: what `beancount_accounts` gives a name
    that collides with no other (the render re-renders the entries of those that do)."""

    def __missing__(self, name: str) -> str:
        base = self[name] = beancount_base(name)
        return base


_BASE_NAMES = _BaseNames()


def encode(e: Entry, dialect: str) -> str:
    """The row the store keeps for `e`: its fields, then its text in `dialect`."""
    return encode_parts(parts_of(e), dialect)


def encode_parts(parts: Parts, dialect: str) -> str:
    """`encode` of the entry of `parts`, without building it."""
    date, kind, obj, object_id, payee, narration, postings, meta, customer = parts
    day = iso_date(date)
    amounts = [str(p[1]) for p in postings]  # the fields', and (most often) the block's
    if dialect == "beancount":
        if len(_BASE_NAMES) >= 4096:  # a memo of account names, small
            _BASE_NAMES.clear()
        block = beancount_block(day, payee, narration, meta, postings, amounts, _BASE_NAMES)
    else:
        block = ledger_block(day, payee, narration, meta, postings, amounts, dialect)
    # `fields_of(e, block)` without the Struct (its JSON is that of a tuple of its fields), each
    # text looked for in the block once (an entry names an account on several postings).
    find = block.find
    ref: dict[str, Text] = {}
    for s in {payee, narration, *map(_VALUE, meta), *map(_ACCOUNT, postings), *map(_COMMENT, postings)}:
        n = len(s)
        if n >= _SHORTEST:
            at = find(s)
            if at >= 0:
                ref[s] = (at, n)
    get = ref.get
    fields = (
        day,
        kind,
        obj,
        object_id,
        get(payee, payee),
        get(narration, narration),
        [(get(a, a), m, c, get(k, k), r) for (a, _, c, k, r), m in zip(postings, amounts)],  # noqa: B905
        [(k, get(v, v)) for k, v in meta],
        customer,
    )
    return "".join((_TAGS[dialect], _ENCODER.encode(fields).decode(), "\n", block))


def decode(row: str) -> tuple[str, Fields, str]:
    """A row's tag, fields (references into the block unresolved: `text_of`) and block;
    ValueError for any other text."""
    nl = row.find("\n")
    start = row.find("[")
    if not row.startswith("L") or nl < 0 or start < 0 or start > nl:
        raise ValueError("not a ledger entry row")
    try:
        fields = _DECODER.decode(row[start:nl])
    except msgspec.DecodeError as exc:
        raise ValueError(f"not a ledger entry row: {exc}") from None
    return row[:start], fields, row[nl + 1 :]


def sort_key(date: str, kind: str, obj: str, object_id: str) -> str:
    """`Entry.sort_key` as a string that sorts the same way (ties included).

    Date (ISO, so text order is date order), kind rank, object, then a numeric id (ASCII
    digits) by value (its digits behind their count) before any other id by its text.
    """
    if object_id.isascii() and object_id.isdigit():
        digits = object_id.lstrip("0") or "0"  # str(int(object_id)), without the int
        oid = f"0{len(digits):05d}{digits}"
    else:
        oid = "1" + object_id
    return f"{date}{KIND_ORDER.get(kind, 9)}{obj}\x01{oid}"


def entry_sort_key(e: Entry) -> str:
    return sort_key(e.date.isoformat(), e.kind, e.object, e.object_id)
