"""Leases in the checkpoint store: which process may do what to one store, right now.

A row of the `Lock` table per concern names the holder (role, host, pid, since) and when the
lease expires. The holder renews it on a heartbeat. Another process may take it over only
once it has expired, with a compare-and-swap UPDATE on the exact row it saw, so of two
processes racing for a stale lease exactly one wins, on SQLite and on PostgreSQL alike.

    daemon  one daemon per store, for the daemon's lifetime
    pull    reading Invoiced into the store and rendering connector files: `syncd sync` for
            its run, a daemon for each pull job (a manual sync fits between two of them)
    push    pushing payments to Invoiced: `syncd push` for its run, a daemon for each
            push-back job

A process that finds a lease held refuses with one line naming the holder, or waits for it
(`--wait`); a daemon job that finds it held is skipped until its next turn. A pull or push
lease whose holder was a process of this host that no longer exists is taken over at once.

Expiry is judged by the clock of the process that wants the lease: hosts sharing a
PostgreSQL store should keep their clocks in sync (NTP) to well within `lock_ttl`.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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
PULL, PUSH = "pull", "push"
EXIT_BUSY = 4  # the exit status of a command refused because another process holds a lease
WAIT_HINT = "try again later, or pass --wait"


def _reason(exc: SQLAlchemyError) -> str:
    # The driver's own message: SQLAlchemy's wrapper adds the SQL and parameters.
    return str(getattr(exc, "orig", None) or exc).strip()


def _pid_namespace() -> str:
    """This process's pid namespace (Linux), so that two containers sharing a host name never
    judge each other's pids; "-" elsewhere."""
    try:
        return os.readlink("/proc/self/ns/pid").strip("pid:[]") or "-"
    except OSError:
        return "-"


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

    @property
    def role(self) -> str:
        """What holds it (`syncd sync`, ...): the holder id's last part (older rows: `syncd daemon`)."""
        parts = self.holder.split(":", 3)
        return parts[3] if len(parts) == 4 else "syncd daemon"

    def describe(self) -> str:
        return f"host {self.host}, pid {self.pid}, since {_when(self.since)}"

    @classmethod
    def from_row(cls, row: Any) -> Holder:
        return cls(row["holder"], row["host"], int(row["pid"]), float(row["since"]), float(row["expires_at"]))


class LeaseHeld(SyncdError):
    """Another live process holds the lease on this store."""

    exit_code = EXIT_BUSY

    def __init__(self, current: Holder, name: str = DEFAULT_NAME, hint: str = "") -> None:
        self.current = current
        if name == DEFAULT_NAME:
            text = f"another syncd daemon holds this checkpoint store ({current.describe()}; "
        else:
            text = f"the checkpoint store's {name} lease is held by {current.role} ({current.describe()}; "
        text += f"its lease expires at {_when(current.expires_at)} unless renewed)"
        super().__init__(text + (f"; {hint}" if hint else ""))


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
        role: str = "syncd daemon",
        reclaim_dead: bool = False,
    ) -> None:
        self.engine = engine
        self.ttl = ttl
        self.name = name
        self.clock = clock
        self.host = host or socket.gethostname()
        self.pid = os.getpid() if pid is None else pid
        # Unique per process start: a restarted daemon that reuses a pid is still a new holder.
        # Then the pid namespace (to tell whether a pid on this host is ours to check), and the
        # role last, so that a refused process can say what holds the lease.
        self.holder = f"{self.host}:{self.pid}:{uuid.uuid4().hex[:12]}.{_pid_namespace()}:{role}"[:200]
        self.reclaim_dead = reclaim_dead
        self.since: float | None = None

    def current(self) -> Holder | None:
        """The lease as stored now (None when nobody holds it)."""
        try:
            with self.engine.connect() as conn:
                row = conn.execute(select(LOCK).where(LOCK.c.name == self.name)).mappings().first()
        except SQLAlchemyError as exc:
            raise StoreError(
                f"checkpoint store unreachable reading the {self.name} lease: {_reason(exc)}"
            ) from None
        return Holder.from_row(row) if row else None

    def _dead(self, seen: Holder) -> bool:
        """True when the holder was a process of this host (same pid namespace) that is gone:
        its lease need not run out. A reused pid looks alive: then the lease runs out as usual."""
        parts = seen.holder.split(":", 3)
        if seen.host != self.host or len(parts) < 3 or not parts[2].endswith("." + _pid_namespace()):
            return False
        try:
            os.kill(seen.pid, 0)
        except ProcessLookupError:
            return True
        except OSError:  # EPERM: alive, another user's
            return False
        return False

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
                    f"checkpoint store unreachable taking the {self.name} lease: {_reason(exc)}"
                ) from None
            seen = self.current()
            if seen is None:
                continue  # released meanwhile: try the insert again
            dead = self.reclaim_dead and self._dead(seen)
            if seen.holder != self.holder and seen.expires_at > now and not dead:
                raise LeaseHeld(seen, self.name)
            # Compare-and-swap on the exact row we saw: of two racers only one matches.
            stmt = (
                update(LOCK)
                .where(
                    and_(
                        LOCK.c.name == self.name,
                        LOCK.c.holder == seen.holder,
                        LOCK.c.expires_at == seen.expires_at,
                        *(() if dead else (LOCK.c.expires_at <= now,)),
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
                    f"checkpoint store unreachable taking the {self.name} lease: {_reason(exc)}"
                ) from None
            if taken:
                self.since = now
                log.warning(
                    "lease.taken_over",
                    lease=self.name,
                    previous_host=seen.host,
                    previous_pid=seen.pid,
                    previous_since=_when(seen.since),
                    expired_at=_when(seen.expires_at),
                )
                return seen
        current = self.current()
        if current is not None:
            raise LeaseHeld(current, self.name)
        raise StoreError(f"could not take the {self.name} lease: it keeps changing hands")

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
                f"checkpoint store unreachable renewing the {self.name} lease: {_reason(exc)}"
            ) from None
        if not renewed:
            current = self.current()
            who = current.describe() if current else "nobody"
            raise LeaseLost(f"the {self.name} lease was taken over (now held by {who})")

    def release(self) -> None:
        """Give the lease up (only if still ours)."""
        try:
            with self.engine.begin() as conn:
                conn.execute(delete(LOCK).where(and_(LOCK.c.name == self.name, LOCK.c.holder == self.holder)))
        except SQLAlchemyError as exc:
            log.warning("lease.release_failed", error=_reason(exc))

    def acquire_waiting(self, stop: threading.Event | None = None, poll: float = 1.0) -> None:
        """Take the lease, waiting while another process holds it; LeaseHeld once `stop` is set."""
        waiting = False
        while True:
            try:
                self.acquire()
                return
            except LeaseHeld as exc:
                if not waiting:
                    log.info(
                        "lease.waiting", lease=self.name, holder=exc.current.role, held=exc.current.describe()
                    )
                    waiting = True
                if stop is None:
                    time.sleep(poll)
                elif stop.wait(poll):
                    raise


@contextmanager
def holding(
    engine: Engine,
    name: str,
    *,
    ttl: float,
    role: str,
    wait: bool = False,
    stop: threading.Event | None = None,
    on_lost: Callable[[str], None] | None = None,
    hint: str = "",
) -> Iterator[Lease]:
    """Hold lease `name` for the `with` block: taken (or waited for), renewed every ttl/3,
    released at the end. Raises LeaseHeld (ending with `hint`) when another process holds it
    and `wait` is off.
    `on_lost` is called (from the renewing thread) if another process took the lease over."""
    # A run killed on this host (kill -9, OOM) leaves its row: the next run need not wait
    # for it to run out. The daemon's own lease keeps the documented lock_ttl take-over.
    lease = Lease(engine, ttl=ttl, name=name, role=role, reclaim_dead=True)
    try:
        if wait:
            lease.acquire_waiting(stop)
        else:
            lease.acquire()
    except LeaseHeld as exc:
        raise LeaseHeld(exc.current, name, hint) from None
    done = threading.Event()

    def renew() -> None:
        while not done.wait(max(0.5, min(ttl / 3, 10.0))):
            try:
                lease.renew()
            except LeaseLost as exc:
                log.error("lease.lost", lease=name, error=str(exc))
                if on_lost is not None:
                    on_lost(str(exc))
                return
            except StoreError as exc:  # the run itself meets the outage; try again next beat
                log.warning("lease.renew_failed", lease=name, error=str(exc))

    thread = threading.Thread(target=renew, name=f"lease-{name}", daemon=True)
    thread.start()
    try:
        yield lease
    finally:
        done.set()
        thread.join(5)
        lease.release()
