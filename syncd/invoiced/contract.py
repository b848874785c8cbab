"""The page contract: what every record of a list response must hold before any of it is used.

A page is taken whole or not at all. One record without an id would be stored under a blank
key; one `updated_at` in the year 2100 would move the cursor past every real record. So a
page that breaks the contract fails its stream with one line naming the endpoint and the
record's position, and nothing of it reaches the store, a connector or a cursor.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from syncd.errors import SyncdError

# Seconds a record's `updated_at` may lie after the response's `Date`: the API's database
# and its front servers keep their own clocks.
MAX_SKEW = 300
# A response's Date this far ahead of our clock is not a clock skew but a broken server: taken
# as the listing's time, it would move a cursor past every record yet to be written.
MAX_AHEAD = 86_400
# Deeper than any Invoiced object (an invoice's items' taxes are four levels down); a record
# nested deeper is hostile and would overflow the stack of whatever walks it later.
MAX_DEPTH = 32


class ContractError(SyncdError):
    """A response broke the API's contract; nothing of it was used."""

    def __init__(
        self, endpoint: str, reason: str, *, position: int | None = None, size: int | None = None
    ) -> None:
        self.endpoint, self.position, self.reason = endpoint, position, reason
        where = f"GET {endpoint}"
        if position is not None:
            where += f": record {position} of {size}"
        super().__init__(f"{where} breaks the API contract: {reason}; nothing of this page was used")


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _too_deep(value: Any) -> bool:
    """True when `value` nests objects or arrays deeper than MAX_DEPTH (iterative: no recursion)."""
    level: list[Any] = [value]
    for _ in range(MAX_DEPTH):
        level = [
            child
            for node in level
            for child in (node.values() if isinstance(node, dict) else node if isinstance(node, list) else ())
            if isinstance(child, dict | list)
        ]
        if not level:
            return False
    return True


def _problem(item: Any, server_time: int | None, dated: bool, deep: bool = True) -> str | None:
    if not isinstance(item, dict):
        return f"not a JSON object but {type(item).__name__} {_show(item)}"
    rid = item.get("id")
    if "id" not in item:
        return "id is missing"
    if rid is None:
        return "id is null"
    if not (_is_int(rid) or (isinstance(rid, str) and rid.strip())):
        return f"id {_show(rid)} is not a non-empty string or an integer"
    named = f"id {_show(rid)}: "
    if "updated_at" not in item:
        return named + "updated_at is missing"
    updated = item["updated_at"]
    if not _is_int(updated) or updated < 0:
        return named + f"updated_at {_show(updated)} is not a unix time in seconds"
    if server_time is not None and updated > server_time + MAX_SKEW:
        return (
            named + f"updated_at {updated} is {updated - server_time} s after the response's Date "
            f"({server_time}); at most {MAX_SKEW} s of clock skew is accepted"
        )
    if dated and item.get("date") is not None and not _is_int(item["date"]):
        return named + f"date {_show(item['date'])} is not a unix time in seconds"
    if deep and _too_deep(item):
        return named + f"nested deeper than {MAX_DEPTH} levels"
    return None


def check_page(
    endpoint: str,
    items: Sequence[Any],
    server_time: int | None,
    *,
    dated: bool = False,
    now: float | None = None,
    depth: int | None = None,
) -> list[dict[str, Any]]:
    """The page's records once every one keeps the contract; else raise ContractError.

    Each record is a JSON object with an `id` (non-empty string or integer) and an integer
    `updated_at` at most MAX_SKEW seconds after `server_time` (the response's Date, when sent),
    which itself is at most MAX_AHEAD after `now` (this machine's clock).
    `dated`: a `date`, when present, is an integer too (the date-window planning reads it).
    `depth`: the page's nesting depth as read off its bytes (`Page.depth`); when it is within
    bounds, records are not walked again to find one nested too deeply.
    """
    local = time.time() if now is None else now
    if server_time is not None and server_time > local + MAX_AHEAD:
        raise ContractError(
            endpoint,
            f"its Date header ({server_time}) is {server_time - int(local)} s ahead of this machine's "
            f"clock; at most {MAX_AHEAD} s is accepted",
        )
    # The page is an array: its records nest one level less than it does.
    deep = depth is None or depth > MAX_DEPTH + 1
    for position, item in enumerate(items, start=1):
        problem = _problem(item, server_time, dated, deep)
        if problem is not None:
            raise ContractError(endpoint, problem, position=position, size=len(items))
    return list(items)
