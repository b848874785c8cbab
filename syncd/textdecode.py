"""Reading a hand-made text file (payments inbox, books) as UTF-8, or refusing it plainly.

A byte-order mark says UTF-8, UTF-16 or UTF-32 (spreadsheets save "Unicode text" as
UTF-16); without one the file must be UTF-8. Guessing a legacy code page (cp1252, Latin-1)
would read a name or note wrongly without a word, so such a file is refused, naming the
byte offset of the first byte that is not UTF-8.
"""

from __future__ import annotations

import codecs

_BOMS = (  # UTF-32 first: its little-endian mark starts with UTF-16's
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


class UndecodableText(ValueError):
    """The file is not UTF-8 and has no byte-order mark saying what else it is."""


def decode_text(data: bytes, name: str) -> str:
    """The text of file `name`; `UndecodableText` (naming file and byte offset) when it is not text."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError as exc:
                raise UndecodableText(
                    f"{name}: not valid {encoding.upper()} text at byte offset {exc.start} "
                    f"(the file starts with a {encoding.upper()} byte-order mark)"
                ) from None
    nul = data.find(b"\x00")
    if nul >= 0:
        raise UndecodableText(
            f"{name}: NUL byte at byte offset {nul} (UTF-16 without a byte-order mark?); "
            "save the file as UTF-8"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UndecodableText(
            f"{name}: not UTF-8: byte 0x{data[exc.start]:02x} at byte offset {exc.start}; "
            "save the file as UTF-8 (or UTF-16 with a byte-order mark)"
        ) from None
