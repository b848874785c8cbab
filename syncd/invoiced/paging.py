"""Link-header pagination: follow `rel="next"`, never compute page numbers."""

from __future__ import annotations

import httpx

from syncd.errors import ApiError
from syncd.invoiced.decode import next_link, safe_url


class PaginationLoopError(ApiError):
    """The API pointed `rel="next"` at a page already read: following it would never end."""


class LinkPaginator:
    """Tracks one listing: `advance(response)` after each page, stop when `done`.

    Every URL seen is remembered so that a `next` link back to a read page raises
    `PaginationLoopError` instead of looping forever.
    """

    __slots__ = ("_seen", "done", "next_url")

    def __init__(self) -> None:
        self.next_url: str | None = None
        self.done = False
        self._seen: set[str] = set()

    def advance(self, response: httpx.Response) -> None:
        """Read the `next` link of a page just fetched."""
        self.follow(str(response.url), next_link(response))

    def follow(self, current: str, next_url: str | None) -> None:
        """Record that `current` was read and that the API points on to `next_url` (or ends)."""
        self._seen.add(current)
        if next_url is not None and next_url in self._seen:
            raise PaginationLoopError(
                f'Link rel="next" points back to a page already read: {safe_url(next_url)}',
                method="GET",
                url=safe_url(current),
            )
        self.next_url = next_url
        self.done = next_url is None
