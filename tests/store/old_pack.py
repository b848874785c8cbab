"""Raw records and output rows packed as stores written before Zstandard (main at fec012d)
hold them: zlib's raw deflate against preset dictionaries, tags 0x01 and 0x02. The reference
test_pack_formats.py holds today's readers to: its own copy of the code and the dictionaries,
so a change to store.py's cannot go unnoticed. Frozen: do not edit."""

# ruff: noqa
# mypy: ignore-errors

from __future__ import annotations

import zlib

_PACKED = b"\x01"
_ZDICT = (
    b'"object":"customer","ach_gateway":null,"autopay":false,"autopay_delay_days":null,'
    b'"bill_to_parent":false,"chase":true,"chasing_cadence":null,"consolidated":false,'
    b'"country":"US","created_at":1654000000,"credit_hold":false,"credit_limit":null,'
    b'"currency":"usd","email":"billing@example.com","id":1,"language":null,"metadata":{},'
    b'"name":"","notes":null,"number":"CUST-00001","owner":null,"parent_customer":null,'
    b'"payment_source":null,"payment_terms":"NET 30","phone":null,"sign_up_page":null,'
    b'"statement_pdf_url":"https://","tax_id":null,"taxable":true,"taxes":[],"type":"company",'
    b'"updated_at":1654000000,"address1":null,"address2":null,"city":null,"postal_code":null,'
    b'"state":null,"amount":0.00,"method":"ach","invoice":null,"customer":1,"credit_note":null,'
    b'"date":1654000000,"gateway":null,"gateway_id":null,"parent_transaction":null,'
    b'"payment_source":null,"pdf_url":"https://","receipt_url":"https://","status":"succeeded",'
    b'"type":"payment","object":"transaction",'
    b'{"amount_paid":0.00,"attempt_count":0,"autopay":false,"balance":0.00,"chase":false,'
    b'"closed":false,"created_at":1654000000,"currency":"usd","customer":1,"date":1654000000,'
    b'"discounts":[],"draft":false,"due_date":1654000000,"id":1,"items":[{"amount":0.00,'
    b'"catalog_item":null,"description":null,"discountable":true,"discounts":[],"id":1,'
    b'"metadata":{},"name":"","object":"line_item","quantity":1,"taxable":true,"taxes":[],'
    b'"type":"product","unit_cost":0.00}],"metadata":{},"name":null,"next_payment_attempt":null,'
    b'"notes":null,"number":"INV-000001","object":"invoice","paid":false,"payment_terms":"NET 30",'
    b'"payment_url":"https://sandbox.invoiced.local/invoices/1/payment",'
    b'"pdf_url":"https://sandbox.invoiced.local/invoices/1/pdf","purchase_order":null,'
    b'"status":"not_sent","subscription":null,"subtotal":0.00,"taxes":[],"total":0.00,'
    b'"updated_at":1654000000,"url":"https://sandbox.invoiced.local/invoices/1"}'
)
# Level 1 and a 4 KiB window: a record is small, so a bigger window or level buys nothing and
# setting one up costs more than the deflating. Copied per record: no set-up of the dictionary.
_DEFLATE = zlib.compressobj(1, zlib.DEFLATED, -12, 4, zlib.Z_DEFAULT_STRATEGY, _ZDICT)
_INFLATE = zlib.decompressobj(-12, _ZDICT)


def pack(text: str) -> bytes:
    """A record's JSON text as stored: tagged and deflated (see `_PACKED`)."""
    deflate = _DEFLATE.copy()
    return _PACKED + deflate.compress(text.encode()) + deflate.flush()


def unpack(data: bytes | memoryview) -> bytes:
    """The JSON text (UTF-8) of a stored raw record, packed or not."""
    data = bytes(data)
    if data[:1] != _PACKED:
        return data
    inflate = _INFLATE.copy()
    return inflate.decompress(data[1:]) + inflate.flush()


# Output rows are stored as bytes. A JSON row, or a long text (a ledger entry: its fields and
# its journal text), repeats keys, account names and metadata in every row: it is kept as
# `_ROW_PACKED` then its text deflated against a dictionary of what such rows of the shipped
# connectors share (keys, the default accounts, a journal entry's shape), which takes a
# ledger entry to about a third of its text. A short text (a CSV line: 70-270 characters in
# the shipped mapping) is already compact and is what a render copies: it is kept as its
# UTF-8 bytes, unless it starts with the tag. Tag and dictionary are a format: change them
# only with a new tag.
_ROW_PACKED = b"\x02"
_ROW_ZDICT = (
    b'{"ar_account":"Assets:Accounts Receivable:","credit_account":"Liabilities:Customer Credit:",'
    b'"id":"1","payee":""}'
    b'{"customer":"1","date":"2024-01-01","kind":"payment","meta":[["invoiced_type","transaction"],'
    b'["invoiced_id","1"],["invoice","INV-000001"],["method","credit_card"],["reference",""]],'
    b'"narration":"payment INV-000001","object":"transaction","object_id":"1","payee":"",'
    b'"postings":[["Assets:Accounts Receivable: (CUST-00001)",-100.00,"USD","","ar"],'
    b'["Assets:Bank:Checking",100.00,"USD","",""],["Assets:Clearing:Card Payments",100.00,"USD","",""],'
    b'["Assets:Cash",100.00,"USD","",""],["Liabilities:Customer Credit: (CUST-00001)",-100.00,"USD","","credit"]]}'
    b'{"customer":"1","date":"2024-01-01","kind":"invoice","meta":[["invoiced_type","invoice"],'
    b'["invoiced_id","1"],["number","INV-000001"]],"narration":"Invoice INV-000001","object":"invoice",'
    b'"object_id":"1","payee":"","postings":[["Assets:Accounts Receivable: (CUST-00001)",100.00,"USD","","ar"],'
    b'["Income:Sales:Services",-100.00,"USD","",""],["Liabilities:Sales Tax",-10.00,"USD","",""],'
    b'["Income:Sales:Products",-100.00,"USD","",""]]}'
    # A ledger entry row (connectors/ledger/rows.py), hledger's text: its last 4 KiB is what
    # deflate's window sees, so it comes last.
    b'L2h["2024-01-01","payment","transaction","1",[14,19],[36,18],[[[158,59],"-24.49","USD","","ar"],'
    b'[[234,20],"24.49","USD","",""]],[["invoiced_type",[76,11]],["invoiced_id","1"],["invoice",[44,10]],'
    b'["method","ach"]],"1"]\n\n2024-01-01 * Example Customer | payment INV-000001\n'
    b"    ; invoiced_type: transaction\n    ; invoiced_id: 1\n    ; invoice: INV-000001\n    ; method: ach\n"
    b"    Assets:Accounts Receivable:Example Customer (CUST-00001)  -100.00 USD\n"
    b"    Assets:Bank:Checking  100.00 USD\n"
    b'L2h["2024-01-01","invoice","invoice","1",[14,21],[38,18],[[[136,61],"100.00","USD","","ar"],'
    b'[[214,21],"-100.00","USD",[252,8],""]],[["invoiced_type","invoice"],["invoiced_id","1"],'
    b'["number",[46,10]]],"1"]\n\n2024-01-01 * Example Customer | Invoice INV-000001\n'
    b"    ; invoiced_type: invoice\n    ; invoiced_id: 1\n    ; invoiced_event: voided\n    ; number: INV-000001\n"
    b"    Assets:Accounts Receivable:Example Customer (CUST-00001)  100.00 USD\n"
    b"    Income:Sales:Services  -100.00 USD  ; Services\n    Income:Sales:Products  -100.00 USD  ; Products\n"
    b"    Liabilities:Sales Tax  -10.00 USD\n"
)
_ROW_LONG = 360  # characters: a text longer than this is deflated too
_ROW_DEFLATE = zlib.compressobj(1, zlib.DEFLATED, -12, 4, zlib.Z_DEFAULT_STRATEGY, _ROW_ZDICT)
_ROW_INFLATE = zlib.decompressobj(-12, _ROW_ZDICT)


def pack_row(text: str) -> bytes:
    """An output row's text as stored: a JSON row or a long text tagged and deflated, any other
    as its bytes (see `_ROW_PACKED`)."""
    if not text.startswith(("{", "\x02")) and len(text) <= _ROW_LONG:
        return text.encode()
    deflate = _ROW_DEFLATE.copy()
    return _ROW_PACKED + deflate.compress(text.encode()) + deflate.flush()


def unpack_row(data: bytes | memoryview) -> str:
    """The text of a stored output row (the inverse of `pack_row`)."""
    data = bytes(data)
    if data[:1] != _ROW_PACKED:
        return data.decode()
    inflate = _ROW_INFLATE.copy()
    return (inflate.decompress(data[1:]) + inflate.flush()).decode()
