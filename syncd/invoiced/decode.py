"""Bytes in and out of the API edge: Decimal JSON, error bodies, headers, safe URLs."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
import msgspec
import simplejson

from syncd.log import redact_text

# Query parameters that could carry a credential if someone put one in a URL by hand.
_SECRET_PARAMS = frozenset({"api_key", "apikey", "key", "token", "access_token", "password", "secret"})


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number this client accepts")


# msgspec's C parser: fractions straight into Decimal, NaN and Infinity refused, as below.
_FAST = msgspec.json.Decoder(float_hook=Decimal)


def loads(content: bytes) -> Any:
    """Parse a JSON body once; numbers with a fraction become Decimal, never float (nor NaN)."""
    try:
        try:
            return _FAST.decode(content)
        except msgspec.DecodeError:
            # Whatever msgspec refuses (a BOM, a lone surrogate escape, junk) gets the standard
            # library's verdict, so a body is accepted or refused exactly as before.
            return json.loads(content, parse_float=Decimal, parse_constant=_no_constant)
    except RecursionError:
        # A body nested past the parser's stack is junk like a cut one, not a crash.
        raise ValueError("JSON nested too deeply") from None


# A body's skeleton: quotes and brackets only, objects' braces read as brackets.
_NOT_SKELETON = bytes(b for b in range(256) if b not in b'"[]{}')
_BRACKETS = bytes.maketrans(b"{}", b"[]")


def nesting_depth(content: bytes, limit: int) -> int | None:
    """How deeply the arrays and objects of a valid UTF-8 JSON body nest (a flat array: 1),
    read off its bytes; None when it is more than `limit` or the body is not plain UTF-8.

    The JSON parser has already accepted `content`: escapes are the only way a quote or a
    bracket can hide inside a string, so once they are gone every string is `"..."`. Each
    pass then removes the pairs that hold no other pair (a pass of `replace` does not look
    at what it joined): the passes count the levels. A few microseconds a record, where
    walking the decoded objects costs more.
    """
    if b"\x00" in content or content.startswith(b"\xef\xbb\xbf"):
        return None  # UTF-16/32 (every ASCII character has a zero byte) or a BOM: not read here
    if b"\\" in content:  # one byte: a fast scan; most pages have no escape at all
        # `\\` first, left to right as the parser reads escapes: `\\"` is a backslash, then a quote.
        content = content.replace(b"\\\\", b"").replace(b'\\"', b"")
    skeleton = content.translate(_BRACKETS, _NOT_SKELETON).replace(b'""', b"")
    if b'"' in skeleton:  # a string held a bracket: every other part is outside strings
        skeleton = b"".join(skeleton.split(b'"')[::2])
    depth = 0
    while skeleton:
        if depth == limit:
            return None
        joined = skeleton.replace(b"[]", b"")
        if len(joined) == len(skeleton):
            return None  # unbalanced: not what the parser accepted; let the objects be walked
        skeleton, depth = joined, depth + 1
    return depth


def dumps(data: Mapping[str, Any]) -> bytes:
    """Encode a request body; Decimal is written as an exact JSON number."""
    return simplejson.dumps(data, use_decimal=True, separators=(",", ":")).encode()


def safe_url(url: httpx.URL | str) -> str:
    """The URL without user info or secret-looking query parameters, fit for logs and errors."""
    parsed = httpx.URL(str(url))
    if parsed.userinfo:
        parsed = parsed.copy_with(username=None, password=None)
    if parsed.query:
        pairs = parse_qsl(parsed.query.decode(), keep_blank_values=True)
        if any(k.lower() in _SECRET_PARAMS for k, _ in pairs):
            cleaned = [(k, "***" if k.lower() in _SECRET_PARAMS else v) for k, v in pairs]
            parsed = parsed.copy_with(query=urlencode(cleaned).encode())
    return redact_text(str(parsed))


def http_date(value: str | None) -> int | None:
    """Unix seconds from an HTTP date header, or None when absent or unreadable."""
    if not value:
        return None
    try:
        return int(parsedate_to_datetime(value).timestamp())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def retry_after(response: httpx.Response) -> float | None:
    """Seconds to wait from `Retry-After` (delay seconds or an HTTP date), or None.

    An HTTP date is measured against the response's own `Date` header when it has one,
    so a skewed local clock does not stretch or shrink the wait.
    """
    value = response.headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    until = http_date(value)
    if until is None:
        return None
    now = http_date(response.headers.get("date"))
    return max(float(until - (now if now is not None else time.time())), 0.0)


def total_count(response: httpx.Response) -> int | None:
    """`X-Total-Count` as an int, or None when absent or not a number."""
    value = response.headers.get("x-total-count")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def next_link(response: httpx.Response) -> str | None:
    """The absolute URL of `Link rel="next"`, resolved against the request URL."""
    link = response.links.get("next")
    target = link.get("url") if link else None
    if not target:
        return None
    return str(response.url.join(target))


def error_fields(response: httpx.Response) -> tuple[str, str | None, str | None]:
    """`(message, type, param)` from an error body `{type, message, param}`; tolerant of junk."""
    try:
        body = loads(response.content)
    except ValueError:
        body = None
    if isinstance(body, dict):
        message = body.get("message") or body.get("error") or response.reason_phrase
        kind, param = body.get("type"), body.get("param")
        return (
            redact_text(str(message)),
            str(kind) if kind is not None else None,
            str(param) if param is not None else None,
        )
    text = response.text.strip().replace("\n", " ")[:200]
    message = response.reason_phrase or f"HTTP {response.status_code}"
    return redact_text(f"{message}: {text}" if text else message), None, None
