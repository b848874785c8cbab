"""LinkPaginator on hand-built responses: follows rel=next, stops, refuses loops."""

from __future__ import annotations

import httpx
import pytest

from syncd.errors import ApiError
from syncd.invoiced import LinkPaginator, PaginationLoopError

BASE = "https://api.invoiced.com/customers"


def page(url: str, link: str | None) -> httpx.Response:
    headers = {"Link": link} if link else {}
    return httpx.Response(200, headers=headers, json=[], request=httpx.Request("GET", url))


# The Link header exactly as the seed reference shows it (folded over lines).
SEED_LINK = (
    f'<{BASE}?page=3&per_page=10>; rel="self",\n'
    f'      <{BASE}?page=1&per_page=10>; rel="first",\n'
    f'      <{BASE}?page=2&per_page=10>; rel="previous",\n'
    f'      <{BASE}?page=4&per_page=10>; rel="next",\n'
    f'      <{BASE}?page=5&per_page=10>; rel="last"'
).replace("\n", "")


def test_advance_reads_rel_next_among_all_relations() -> None:
    paginator = LinkPaginator()
    paginator.advance(page(f"{BASE}?page=3&per_page=10", SEED_LINK))
    assert paginator.next_url == f"{BASE}?page=4&per_page=10"
    assert not paginator.done


def test_no_next_link_means_done() -> None:
    paginator = LinkPaginator()
    last = f'<{BASE}?page=5&per_page=10>; rel="self", <{BASE}?page=1&per_page=10>; rel="first"'
    paginator.advance(page(f"{BASE}?page=5&per_page=10", last))
    assert paginator.done
    assert paginator.next_url is None
    other = LinkPaginator()
    other.advance(page(BASE, None))
    assert other.done


def test_relative_next_is_made_absolute() -> None:
    paginator = LinkPaginator()
    paginator.advance(page(f"{BASE}?page=1", '</customers?page=2>; rel="next"'))
    assert paginator.next_url == f"{BASE}?page=2"


def test_next_pointing_back_to_a_read_page_raises() -> None:
    paginator = LinkPaginator()
    paginator.advance(page(f"{BASE}?page=1", f'<{BASE}?page=2>; rel="next"'))
    paginator.advance(page(f"{BASE}?page=2", f'<{BASE}?page=3>; rel="next"'))
    with pytest.raises(PaginationLoopError) as info:
        paginator.advance(page(f"{BASE}?page=3", f'<{BASE}?page=1>; rel="next"'))
    assert isinstance(info.value, ApiError)
    assert "page=1" in str(info.value)
    assert info.value.url == f"{BASE}?page=3"


def test_next_pointing_to_itself_raises() -> None:
    paginator = LinkPaginator()
    with pytest.raises(PaginationLoopError):
        paginator.advance(page(f"{BASE}?page=2", f'<{BASE}?page=2>; rel="next"'))
