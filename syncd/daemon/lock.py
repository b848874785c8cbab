"""The single-instance lease: one daemon per checkpoint store.

A row of the `Lock` table names the holder (host, pid, since) and when the lease expires.
The holder renews it on a heartbeat. Another daemon may take it over only once it has
expired, with a compare-and-swap UPDATE on the exact row it saw, so of two daemons racing
for a stale lease exactly one wins, on SQLite and on PostgreSQL alike.

Expiry is judged by the clock of the daemon that wants the lease: hosts sharing a
PostgreSQL store should keep their clocks in sync (NTP) to well within `lock_ttl`.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import Table, and_, delete, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from syncd.errors import StoreError, SyncdError
from syncd.store.models import Lock

log = structlog.get_logger(__name__)
LOCK: Table = Lock.__table__  # type: ignore[attr-defined]
DEFAULT_NAME = "daemon"


def _reason(exc: SQLAlchemyError) -> str:
    # The driver's own message: SQLAlchemy's wrapper adds the SQL and parameters.
    return str(getattr(exc, "orig", None) or exc).strip()


def _when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@dataclass(frozen=True)
class Holder:
    """Who holds a lease, as stored."""

    holder: str
    host: str
    pid: int
    since: float
    expires_at: float

    def describe(self) -> str:
        return f"host {self.host}, pid {self.pid}, since {_when(self.since)}"

    @classmethod
    def from_row(cls, row: Any) -> Holder:
        return cls(row["holder"], row["host"], int(row["pid"]), float(row["since"]), float(row["expires_at"]))


class LeaseHeld(SyncdError):
    """Another live daemon holds the lease on this store."""

    def __init__(self, current: Holder) -> None:
        self.current = current
        super().__init__(
            f"another syncd daemon holds this checkpoint store ({current.describe()}; "
            f"its lease expires at {_when(current.expires_at)} unless renewed)"
        )


class LeaseLost(SyncdError):
    """Our lease was taken over (we failed to renew it in time)."""


class Lease:
    """A renewable, expiring lease on the store, held by this process."""

    def __init__(
        self,
        engine: Engine,
        *,
        ttl: float,
        name: str = DEFAULT_NAME,
        clock: Callable[[], float] = time.time,
        host: str | None = None,
        pid: int | None = None,
    ) -> None:
        self.engine = engine
        self.ttl = ttl
        self.name = name
        self.clock = clock
        self.host = host or socket.gethostname()
        self.pid = os.getpid() if pid is None else pid
        # Unique per process start: a restarted daemon that reuses a pid is still a new holder.
        self.holder = f"{self.host}:{self.pid}:{uuid.uuid4().hex[:12]}"
        self.since: float | None = None

    def current(self) -> Holder | None:
        """The lease as stored now (None when nobody holds it)."""
        try:
            with self.engine.connect() as conn:
                row = conn.execute(select(LOCK).where(LOCK.c.name == self.name)).mappings().first()
        except SQLAlchemyError as exc:
            raise StoreError(
                f"checkpoint store unreachable reading the daemon lease: {_reason(exc)}"
            ) from None
        return Holder.from_row(row) if row else None

    def acquire(self) -> Holder | None:
        """Take the lease; returns the stale holder it replaced, if any. Raises LeaseHeld."""
        for _ in range(5):
            now = self.clock()
            row = {
                "name": self.name,
                "holder": self.holder,
                "host": self.host,
                "pid": self.pid,
                "since": now,
                "expires_at": now + self.ttl,
            }
            try:
                with self.engine.begin() as conn:
                    conn.execute(LOCK.insert().values(**row))
                self.since = now
                return None
            except IntegrityError:
                pass  # somebody holds (or held) it: look who
            except SQLAlchemyError as exc:
                raise StoreError(
                    f"checkpoint store unreachable taking the daemon lease: {_reason(exc)}"
                ) from None
            seen = self.current()
            if seen is None:
                continue  # released meanwhile: try the insert again
            if seen.holder != self.holder and seen.expires_at > now:
                raise LeaseHeld(seen)
            # Compare-and-swap on the exact row we saw: of two racers only one matches.
            stmt = (
                update(LOCK)
                .where(
                    and_(
                        LOCK.c.name == self.name,
                        LOCK.c.holder == seen.holder,
                        LOCK.c.expires_at == seen.expires_at,
                        LOCK.c.expires_at <= now,
                    )
                )
                .values(
                    holder=self.holder, host=self.host, pid=self.pid, since=now, expires_at=now + self.ttl
                )
            )
            try:
                with self.engine.begin() as conn:
                    taken = conn.execute(stmt).rowcount == 1
            except SQLAlchemyError as exc:
                raise StoreError(
                    f"checkpoint store unreachable taking the daemon lease: {_reason(exc)}"
                ) from None
            if taken:
                self.since = now
                log.warning(
                    "lease.taken_over",
                    previous_host=seen.host,
                    previous_pid=seen.pid,
                    previous_since=_when(seen.since),
                    expired_at=_when(seen.expires_at),
                )
                return seen
        current = self.current()
        if current is not None:
            raise LeaseHeld(current)
        raise StoreError("could not take the daemon lease: it keeps changing hands")

    def renew(self) -> None:
        """Push our expiry forward; LeaseLost if another daemon took the lease over."""
        now = self.clock()
        stmt = (
            update(LOCK)
            .where(and_(LOCK.c.name == self.name, LOCK.c.holder == self.holder))
            .values(expires_at=now + self.ttl)
        )
        try:
            with self.engine.begin() as conn:
                renewed = conn.execute(stmt).rowcount == 1
        except SQLAlchemyError as exc:
            raise StoreError(
                f"checkpoint store unreachable renewing the daemon lease: {_reason(exc)}"
            ) from None
        if not renewed:
            current = self.current()
            who = current.describe() if current else "nobody"
            raise LeaseLost(f"the daemon lease was taken over (now held by {who})")

    def release(self) -> None:
        """Give the lease up (only if still ours)."""
        try:
            with self.engine.begin() as conn:
                conn.execute(delete(LOCK).where(and_(LOCK.c.name == self.name, LOCK.c.holder == self.holder)))
        except SQLAlchemyError as exc:
            log.warning("lease.release_failed", error=_reason(exc))
