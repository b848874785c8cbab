"""The API edge: httpx client with Basic auth and Decimal JSON, Link paging, typed errors, retries."""

from syncd.lazy import hidden

# httpx imports its command line (click, rich, pygments) if it can: syncd never runs it.
with hidden("httpx._main"):
    from syncd.invoiced.client import ClientStats, InvoicedClient, Page
    from syncd.invoiced.paging import LinkPaginator, PaginationLoopError
    from syncd.invoiced.retry import RetryPolicy

__all__ = ["ClientStats", "InvoicedClient", "LinkPaginator", "Page", "PaginationLoopError", "RetryPolicy"]
