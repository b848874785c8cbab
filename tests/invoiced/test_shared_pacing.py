"""One account's pace shared by its processes through the store (syncd/store/pacing.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy
from structlog.testing import capture_logs

from syncd.invoiced import InvoicedClient, RetryPolicy
from syncd.invoiced.pacing import Pacer
from syncd.store.database import make_engine
from syncd.store.pacing import SharedPacer, share_pacing
from tests.conftest import pg_schema_store
from tests.invoiced.pace_walker import run_walkers


def _pacer(url: str, **kw: Any) -> SharedPacer:
    return SharedPacer(make_engine(url), "acme", **kw)


def test_a_429_one_process_drew_pauses_and_paces_the_others(store_url: str) -> None:
    a, b = _pacer(store_url), _pacer(store_url)  # two processes: own engines, own pacers
    try:
        for _ in range(5):
            a.acquire()
            a.succeeded()
        a.throttled(a.acquire(), 0.5)  # a 429 with Retry-After: 0.5 for process a
        assert a.rate is not None and a.episodes == 1
        slept: list[float] = []
        b.sleep = lambda s: (slept.append(s), a.sleep(s))[1]  # type: ignore[func-returns-value]
        b.acquire()  # b never saw that 429, yet waits the pause out and paces as a does
        assert sum(slept) >= 0.4
        assert (b.rate, b.episodes) == (a.rate, 1)
        assert a.shared_calls and b.shared_calls
    finally:
        a.engine.dispose()
        b.engine.dispose()


def test_a_second_429_of_the_same_episode_lowers_the_shared_pace_once(store_url: str) -> None:
    a, b = _pacer(store_url), _pacer(store_url)
    try:
        for _ in range(10):
            a.acquire()
            a.succeeded()
        sent_a, sent_b = a.acquire(), b.acquire()  # both in flight when the server runs dry
        a.throttled(sent_a, 0.0)
        first = a.rate
        b.throttled(sent_b, 0.0)  # sent before the decrease: the same episode
        assert b.rate == first and b.episodes == 1
    finally:
        a.engine.dispose()
        b.engine.dispose()


def test_an_unreachable_store_falls_back_to_in_process_pacing_and_says_so_once(tmp_path: Any) -> None:
    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'missing' / 'no.db'}")  # cannot be opened
    pacer = SharedPacer(engine, "acme", retry_after=3600)
    answers = iter([httpx.Response(429, headers={"Retry-After": "0"}, json={"message": "slow"})])

    def server(request: httpx.Request) -> httpx.Response:
        return next(answers, httpx.Response(200, json=[{"id": 1}]))

    client = InvoicedClient(httpx.Client(base_url="https://api.test", transport=httpx.MockTransport(server)))
    client.pacer = pacer
    with capture_logs() as logs:
        for _ in range(3):
            assert client.get_page("/invoices", None).items == [{"id": 1}]
    assert client.stats.throttled == 1 and pacer.shared_calls == 0
    assert [e["event"] for e in logs].count("pacing.store_unavailable") == 1


def test_only_clients_that_ask_share_and_only_once(store_url: str) -> None:
    engine = make_engine(store_url)
    try:
        mine = InvoicedClient(httpx.Client(base_url="https://api.test"), RetryPolicy())
        share_pacing(mine, engine)
        assert type(mine.pacer) is Pacer  # a client made by a test or a caller: left alone
        mine.pace_key = "acme"
        share_pacing(mine, engine)
        shared = mine.pacer
        share_pacing(mine, engine)
        assert isinstance(shared, SharedPacer) and mine.pacer is shared and shared.key == "acme"
        mine.close()
    finally:
        engine.dispose()


# -- several processes of one account against a rate-limited server -------------------------

# Workers pulling different streams of one account at once: one process per stream.
STREAMS = ["customers", "invoices", "transactions"]


@pytest.fixture
def pg_schema_url() -> Iterator[str]:
    yield from pg_schema_store()


def _walk(make_sandbox: Any, store_url: str | None) -> tuple[float, int]:
    """One process per stream of one account, all at once; (share of 429s, 429s)."""
    sb = make_sandbox(seed=5, customers=1000, invoices=1000, transactions=1000, rate_limit=10, burst=10)
    results = run_walkers(sb.url, sb.api_key, [[s] for s in STREAMS], store_url, per_page=10)
    for result in results:  # every record read
        for stream, ids in result["ids"].items():
            assert sorted(ids) == sorted(str(r["id"]) for r in sb.data.list(stream)), stream
    if store_url is not None:
        assert all(r["shared_calls"] > 0 for r in results)
    return sb.stats.served_429 / sb.stats.total, sb.stats.served_429


@pytest.mark.postgres
@pytest.mark.slow
def test_processes_of_one_account_share_its_rate_limit(make_sandbox: Any, pg_schema_url: str) -> None:
    shared, throttled = _walk(make_sandbox, pg_schema_url)
    # Every record read, every process through the shared pace (asserted in _walk), and few
    # 429s. The bound here leaves room for a loaded machine (each probe of the limit costs 1-3
    # 429s, more when requests are slow); bench/run.py --only shared-pace measures the 5 %
    # target and the contrast with unshared pacers, which on counts alone is too close to
    # assert here. That a 429 drawn by one process pauses the others is asserted above.
    assert shared < 0.08, (shared, throttled)


def test_while_unpaced_the_row_is_read_once_a_refresh_not_once_a_request(store_url: str) -> None:
    now = [1000.0]
    a = _pacer(store_url, clock=lambda: now[0], refresh=0.25)
    b = _pacer(store_url)
    try:
        for _ in range(50):  # a burst of requests within one refresh: one round trip
            a.acquire()
            a.succeeded()
        assert a.shared_calls == 1
        b.throttled(b.acquire(), 30.0)  # another process draws a 429: a pause for everyone
        now[0] += 0.3  # a's reply is stale now: it reads the row again, and sees the pause
        slept: list[float] = []
        a.sleep = lambda s: (slept.append(s), now.__setitem__(0, now[0] + s))[1]  # type: ignore[func-returns-value]
        a.acquire()
        assert a.shared_calls >= 2 and sum(slept) >= 25.0
        a.throttled(a.acquire(), 0.0)  # its own 429: the next request asks the row at once
        calls = a.shared_calls
        a.acquire()
        assert a.shared_calls > calls
    finally:
        a.engine.dispose()
        b.engine.dispose()


def test_a_bare_429s_pause_holds_this_process_and_sets_no_pace(store_url: str) -> None:
    now = [1000.0]
    a = _pacer(store_url, clock=lambda: now[0], refresh=0.25)
    try:
        for _ in range(5):
            a.acquire()
            a.succeeded()
        until = a.paused(0.5)  # a 429 without Retry-After: everyone here waits a first backoff
        slept: list[float] = []
        a.sleep = lambda s: (slept.append(s), now.__setitem__(0, now[0] + s))[1]  # type: ignore[func-returns-value]
        assert a.acquire() >= until  # even within a refresh that said "unpaced"
        assert sum(slept) == pytest.approx(0.5)
        assert a.rate is None and a.episodes == 0
    finally:
        a.engine.dispose()
