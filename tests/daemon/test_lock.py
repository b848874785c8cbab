"""The single-instance lease on the checkpoint store (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from syncd.daemon.lock import Lease, LeaseHeld, LeaseLost
from syncd.store import Store


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    s = Store.open(store_url)
    yield s
    s.close()


def test_second_holder_is_refused_naming_host_pid_and_since(store: Store) -> None:
    clock = Clock()
    first = Lease(store.engine, ttl=60, clock=clock, host="books-1", pid=4242)
    assert first.acquire() is None
    second = Lease(store.engine, ttl=60, clock=clock, host="books-2", pid=77)
    clock.now += 59
    with pytest.raises(LeaseHeld) as info:
        second.acquire()
    text = str(info.value)
    assert "books-1" in text and "4242" in text and "2023-11-14 22:13:20 UTC" in text
    assert info.value.current.holder == first.holder


def test_renewal_keeps_the_lease_alive_past_the_first_expiry(store: Store) -> None:
    clock = Clock()
    first = Lease(store.engine, ttl=60, clock=clock, host="a", pid=1)
    first.acquire()
    clock.now += 50
    first.renew()
    clock.now += 50  # 100 s after acquiring, 50 after renewing
    with pytest.raises(LeaseHeld):
        Lease(store.engine, ttl=60, clock=clock, host="b", pid=2).acquire()


def test_expired_lease_is_taken_over_and_the_old_holder_learns_it_lost(store: Store) -> None:
    clock = Clock()
    dead = Lease(store.engine, ttl=60, clock=clock, host="old", pid=11)
    dead.acquire()
    clock.now += 61
    fresh = Lease(store.engine, ttl=60, clock=clock, host="new", pid=22)
    previous = fresh.acquire()
    assert previous is not None and previous.host == "old" and previous.pid == 11
    current = fresh.current()
    assert current is not None and (current.host, current.pid) == ("new", 22)
    with pytest.raises(LeaseLost, match="new"):
        dead.renew()
    dead.release()  # not ours any more: must not delete the new holder's row
    assert fresh.current() is not None


def test_release_lets_the_next_daemon_start_at_once(store: Store) -> None:
    clock = Clock()
    first = Lease(store.engine, ttl=60, clock=clock, host="a", pid=1)
    first.acquire()
    first.release()
    assert Lease(store.engine, ttl=60, clock=clock, host="b", pid=2).acquire() is None


def test_racing_takeovers_of_a_stale_lease_have_exactly_one_winner(store: Store) -> None:
    clock = Clock()
    Lease(store.engine, ttl=5, clock=clock, host="dead", pid=1).acquire()
    clock.now += 10
    contenders = [Lease(store.engine, ttl=60, clock=clock, host=f"h{i}", pid=100 + i) for i in range(8)]
    results: list[str] = []
    barrier = threading.Barrier(len(contenders))

    def take(lease: Lease) -> None:
        barrier.wait()
        try:
            lease.acquire()
            results.append("won")
        except LeaseHeld:
            results.append("refused")

    threads = [threading.Thread(target=take, args=(lease,)) for lease in contenders]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["refused"] * 7 + ["won"]
    winner = contenders[0].current()
    assert winner is not None
    assert [c.holder for c in contenders].count(winner.holder) == 1
