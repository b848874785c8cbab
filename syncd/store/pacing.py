"""One request pace per account, shared by every process through a row of its store.

Several processes call Invoiced for one account at once (workers pulling different
streams, the push-back, a manual `syncd sync`); each with a pacer of its own, together
they would send N times what the account allows. `SharedPacer` keeps what the in-process
Pacer (syncd/invoiced/pacing.py) learns in the store's `pace` row instead, so the account
has one pace, one pause and one measure of what the server lets through:

    acquire()     one UPDATE ... RETURNING: reserves the next slot of the pace (a
                  token bucket kept as the time of its next free slot, GCRA-style), or,
                  while unpaced, only reads the pause; it also adds this process's
                  successes since the last call, which raise the pace and are measured
    throttled()   one UPDATE: the pause until Retry-After for everyone; once per episode
                  the pace drops to `decrease` x what all processes got through lately

Times in the row are the database's clock on PostgreSQL (so processes on several hosts
agree) and this host's wall clock on SQLite (one host by nature); a process turns them into
waits on its own clock, never comparing two clocks. A caller whose slot was reserved
before a new pause or a lower pace began (its process has heard of it meanwhile) reserves
again rather than send into the pause.

The budget of rate-limit waits and the log throttle stay per process (a run's own). When
the store cannot be reached the pacer goes on in-process with the pace it last read
(logged once), and tries the store again `retry_after` seconds later: pacing never fails
a sync.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import structlog
from sqlalchemy import TextClause, text
from sqlalchemy.engine import Engine

from syncd.invoiced.client import InvoicedClient
from syncd.invoiced.pacing import Pacer
from syncd.log import redact_text

log = structlog.get_logger(__name__)


# The two statements, from fixed fragments only ({now}, {greatest}, ... filled in per
# dialect); every value is a bound parameter.

# The pace after this call's k successes (pacing.grown, k times): slow start until the
# second episode (up to the peak and the ceiling), then quickly back up to the peak, then +increase per
# success; past the ceiling, unpaced.
_GROWN = (
    "CASE WHEN rate IS NULL THEN NULL"
    " WHEN episodes < 2 THEN {least}(:ceiling, COALESCE(peak, :ceiling), {greatest}(rate + :inc, rate * :factor))"
    " WHEN peak IS NOT NULL AND rate < peak THEN {least}(peak, rate + :rec)"
    " ELSE rate + :inc END"
)
_RATE = f"(CASE WHEN ({_GROWN}) > :ceiling THEN NULL ELSE ({_GROWN}) END)"
# The slot: one interval (at the pace as of this call) after the last one granted, or now
# less the bucket's depth (a burst after an idle moment), never inside the pause.
_SLOT = f"{{greatest}}(next_at + 1 / {_RATE}, {{now}} - {{greatest}}(0, :burst - 1 / {_RATE}), paused_until)"
# Successes over two adjacent windows of `window` seconds, this call's k added.
_COUNT_SUCCESSES = """
    window_start = CASE WHEN {now} - window_start >= :window THEN {now} ELSE window_start END,
    previous_count = CASE
        WHEN {now} - window_start >= 2 * :window THEN 0
        WHEN {now} - window_start >= :window THEN window_count
        ELSE previous_count END,
    window_count = CASE WHEN {now} - window_start >= :window THEN :k ELSE window_count + :k END"""
# Taken only when it is at most `lookahead` seconds away: a caller holding a slot far ahead
# at an old pace would keep it when the pace rises; it asks again when nearer instead.
_TAKE = f"({_RATE} IS NOT NULL AND {_SLOT} - {{now}} <= :lookahead)"
_RESERVE = f"""
    UPDATE pace SET
        rate = {_RATE},
        next_at = CASE WHEN {_TAKE} THEN {_SLOT} ELSE next_at END,
        granted = CASE WHEN {_TAKE} THEN {_SLOT} WHEN {_RATE} IS NULL THEN {{greatest}}({{now}}, paused_until) ELSE -1 END,
        {_COUNT_SUCCESSES},
        resumed_at = CASE WHEN resumed_at = 0 THEN {{now}} ELSE resumed_at END,
        updated_at = {{now}}
    {{src}}
    WHERE key = :key
    RETURNING rate, next_at, paused_until, episodes, granted{{ret_now}}"""  # noqa: S608 (fixed fragments; values bound)

_UNTIL = "({now} + :after)"
# Successes in the last `window` seconds (the older window weighted by its overlap).
_RECENT = (
    "(CASE WHEN {now} - window_start < :window"
    " THEN window_count + previous_count * {greatest}(0, {least}(1, 1 - ({now} - window_start) / :window))"
    " WHEN {now} - window_start < 2 * :window THEN window_count * (2 - ({now} - window_start) / :window)"
    " ELSE 0 END + :k)"
)
# A new episode: a request sent after the last decrease, with something to measure a pace
# from or other requests sent (Pacer.throttled).
_EPISODE = f"(:sent > decreased_at AND (rate IS NOT NULL OR {_RECENT} > 0 OR :others = 1))"
# The span of sending measured: since the pause before (`window` s at most).
_SPAN = "{least}(:window, {now} - resumed_at)"
# The pace the refused request was sent at (when its process knows it), else the pace.
_FAILED = "(CASE WHEN :sent_rate > 0 THEN {least}(rate, :sent_rate) ELSE rate END)"
# pacing.server_rate: what the server let through, one of them saved during the pause.
_MEASURED = (
    f"(CASE WHEN {_RECENT} >= 5 AND {_SPAN} > 0 THEN ({_RECENT} - 1) / {_SPAN}"
    f" WHEN {_RECENT} < 2 THEN {_FAILED} * 0.5 ELSE {_FAILED} END)"
)
_QUICK = "({now} - resumed_at < :settle)"
# pacing.lowered: (the pace to resume at, the peak to climb back to quickly).
_LOWERED = (
    f"{{greatest}}(:floor, CASE"
    f" WHEN rate IS NULL THEN :decrease * {{greatest}}(1, {_RECENT}) / {{greatest}}(:min_span, {_SPAN})"
    f" WHEN episodes = 1 THEN :decrease * {_FAILED} / (1 + :probe)"
    f" WHEN {_QUICK} THEN :harder * {{least}}({_FAILED}, {_MEASURED})"
    f" ELSE :decrease * {{least}}({_FAILED}, {_MEASURED}) END)"
)
_PEAK = (
    f"(CASE WHEN rate IS NULL THEN (CASE WHEN {_RECENT} >= 5 THEN :reach * {_LOWERED} ELSE NULL END)"
    f" WHEN episodes >= 2 AND {_QUICK}"
    f" THEN :decrease * {{least}}({_FAILED}, {{greatest}}({_MEASURED}, :harder * {_FAILED}))"
    f" ELSE :decrease * {_FAILED} END)"
)
_THROTTLE = f"""
    UPDATE pace SET
        paused_until = {{greatest}}(paused_until, {_UNTIL}),
        rate = CASE WHEN {_EPISODE} THEN {_LOWERED} ELSE rate END,
        peak = CASE WHEN {_EPISODE} THEN {_PEAK} ELSE peak END,
        next_at = CASE WHEN {_EPISODE} THEN 0 ELSE next_at END,
        resumed_at = CASE WHEN {_EPISODE} THEN {_UNTIL} ELSE resumed_at END,
        window_start = CASE WHEN {_EPISODE} THEN {_UNTIL} ELSE window_start END,
        window_count = CASE WHEN {_EPISODE} THEN 0 ELSE window_count END,
        previous_count = CASE WHEN {_EPISODE} THEN 0 ELSE previous_count END,
        episodes = CASE WHEN {_EPISODE} THEN episodes + 1 ELSE episodes END,
        decreased_at = CASE WHEN {_EPISODE} THEN {{now}} ELSE decreased_at END,
        updated_at = {{now}}
    {{src}}
    WHERE key = :key
    RETURNING paused_until, rate, episodes{{ret_now}}"""  # noqa: S608 (fixed fragments; values bound)


_COLUMNS = (
    "INSERT {verb} INTO pace (key, rate, next_at, paused_until, decreased_at, resumed_at, episodes,"
    " window_start, window_count, previous_count, granted, updated_at)"
    " VALUES (:key, NULL, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0) {tail}"
)
_INSERT = {  # the row, unless another process made it already
    True: text(_COLUMNS.format(verb="", tail="ON CONFLICT (key) DO NOTHING")),
    False: text(_COLUMNS.format(verb="OR IGNORE", tail="")),
}


@cache
def _statements(pg: bool) -> tuple[TextClause, TextClause]:
    """(reserve, throttle) for PostgreSQL (the database's clock) or SQLite (`:now`)."""
    if pg:
        fill = {
            "now": "c.now",
            "src": "FROM (SELECT extract(epoch FROM statement_timestamp())::float8 AS now) AS c",
            "ret_now": ", c.now",
            "greatest": "greatest",
            "least": "least",
        }
    else:  # SQLite: max()/min() of several arguments; its RETURNING cannot name a FROM table
        fill = {"now": ":now", "src": "", "ret_now": "", "greatest": "max", "least": "min"}
    return text(_RESERVE.format(**fill)), text(_THROTTLE.format(**fill))


@dataclass(frozen=True, slots=True)
class _Slot:
    taken: bool  # False: too far ahead, ask again after `wait`
    wait: float  # seconds until this caller may send
    rate: float | None
    paused_until: float  # database clock
    episodes: int
    now: float  # database clock at the update


class SharedPacer(Pacer):
    """A Pacer whose pace, pause and measure live in the `pace` row `key` of `engine`'s store."""

    def __init__(
        self,
        engine: Engine,
        key: str,
        *,
        retry_after: float = 30.0,
        lookahead: float = 0.25,
        refresh: float = 0.25,
        db_clock: Callable[[], float] = time.time,
        **pacer: Any,
    ) -> None:
        """
        Args:
            key: the row: the account's name (stores are per account; the key keeps two
                accounts that were given one store apart).
            retry_after: seconds of in-process pacing after the store failed, before the
                store is tried again.
            lookahead: how far ahead a slot may be reserved; a caller further back asks
                again later (one more round trip), so that a rising pace applies to it.
            refresh: while the account is neither paced nor paused, how long a reply that
                said so is trusted before the row is read again: a round trip per request
                (a write on the store the delivery also writes to) costs more than learning
                of another process's pause this much later (its 429 would tell at once).
            db_clock: SQLite's "database clock": this host's wall clock.
            pacer: the Pacer's own arguments (budget, decrease, increase, ...).
        """
        super().__init__(**pacer)
        self.engine, self.key = engine, key
        self.retry_after, self.lookahead, self.db_clock = retry_after, lookahead, db_clock
        self.refresh = refresh
        self._pg = engine.dialect.name == "postgresql"
        self._shared_lock = threading.Lock()
        self._pending = 0  # successes not yet added to the row
        self._last_send = -math.inf  # this process's last paced send (local clock)
        self._offset = 0.0  # database clock - local clock, as of the last round trip
        self._known_episodes = 0  # the most episodes any reply showed this process
        self._known_pause = 0.0  # the latest pause any reply or 429 showed (database clock)
        self._local_since: float | None = None  # the store failed at (local clock)
        self._free_until = -math.inf  # unpaced and unpaused as of a reply, until (local clock)
        self._ready = False
        self.shared_calls = 0  # round trips that reached the store (tests, bench)

    # -- the row ---------------------------------------------------------------------------

    def _params(self, **params: Any) -> dict[str, Any]:
        params["key"] = self.key
        if not self._pg:
            params["now"] = self.db_clock()
        return params

    def _ensure_row(self) -> None:
        if self._ready:
            return
        with self.engine.begin() as conn:
            conn.execute(_INSERT[self._pg], {"key": self.key})
        self._ready = True

    def _take_pending(self) -> int:
        with self._shared_lock:
            n, self._pending = self._pending, 0
            return n

    def _return_pending(self, n: int) -> None:
        with self._shared_lock:
            self._pending += n

    def _reserve(self) -> _Slot:
        """One round trip: this process's successes added, the pace raised by them, a slot taken."""
        self._ensure_row()
        k = self._take_pending()
        params = self._params(
            k=k,
            inc=self.increase * k,
            rec=self.recover * k,
            factor=(1.0 + self.probe) ** k,
            ceiling=self.ceiling,
            burst=self.burst,
            window=self.window,
            lookahead=self.lookahead,
        )
        try:
            with self.engine.begin() as conn:
                row = conn.execute(_statements(self._pg)[0], params).one()
        except BaseException:
            self._return_pending(k)
            raise
        now = float(row[5]) if self._pg else params["now"]
        rate = None if row[0] is None else float(row[0])
        paused_until, granted = float(row[2]), float(row[4])
        if granted >= 0:
            return _Slot(True, max(0.0, granted - now), rate, paused_until, int(row[3]), now)
        # Not taken (too far ahead): ask again once the slot is within the lookahead.
        assert rate is not None
        slot = max(float(row[1]) + 1.0 / rate, now - max(0.0, self.burst - 1.0 / rate), paused_until)
        return _Slot(False, max(0.01, slot - now - self.lookahead / 2), rate, paused_until, int(row[3]), now)

    def _throttle(self, sent_at: float, retry_after: float) -> tuple[float, float | None, int, float]:
        """One round trip: the pause for everyone; a lower pace once per episode."""
        self._ensure_row()
        with self._lock:
            sent_rate = self.pace_of(sent_at)
        k = self._take_pending()
        params = self._params(
            k=k,
            after=max(retry_after, 0.0),
            sent=sent_at + self._offset,
            window=self.window,
            min_span=self.min_span,
            floor=self.floor,
            decrease=self.decrease,
            probe=self.probe,
            settle=self.settle,
            harder=self.harder,
            reach=self.reach,
            sent_rate=sent_rate or -1.0,
            others=int(self.in_flight > 1),
        )
        try:
            with self.engine.begin() as conn:
                row = conn.execute(_statements(self._pg)[1], params).one()
        except BaseException:
            self._return_pending(k)
            raise
        now = float(row[3]) if self._pg else params["now"]
        return float(row[0]), None if row[1] is None else float(row[1]), int(row[2]), now

    # -- in-process when the store is away ------------------------------------------------

    def _shared(self) -> bool:
        with self._shared_lock:
            since = self._local_since
            if since is None:
                return True
            if self.clock() - since < self.retry_after:
                return False
            self._local_since = None  # time to try the store again
            return True

    def _lost(self, exc: BaseException) -> None:
        with self._shared_lock:
            first = self._local_since is None
            self._local_since = self.clock()
        if first:
            log.warning(
                "pacing.store_unavailable",
                account=self.key,
                error=redact_text(" ".join(f"{type(exc).__name__}: {exc}".split()))[:300],
                note=f"pacing this process on its own; the store is tried again in {self.retry_after:g} s",
            )

    def _learn(
        self, local_now: float, db_now: float, rate: float | None, paused_until: float, episodes: int
    ) -> None:
        """What a reply told: the clock offset, and the shared pace for in-process fallback."""
        with self._lock:
            self.rate, self.episodes = rate, episodes
            self._paused_until = max(self._paused_until, paused_until - (db_now - local_now))
        with self._shared_lock:
            self._offset = db_now - local_now
            self._known_episodes = max(self._known_episodes, episodes)
            self._known_pause = max(self._known_pause, paused_until)
            self.shared_calls += 1

    # -- the Pacer interface ---------------------------------------------------------------

    def acquire(self, waited_until: float = -math.inf) -> float:
        with self._lock:
            pause = self._paused_until
        begin = max(self.clock(), waited_until)
        if pause > begin:  # a pause this process knows of: a bare 429's is its own (`paused`)
            self.sleep(pause - begin)
            waited_until = max(waited_until, pause)
        with self._shared_lock:
            fresh = self.clock() < self._free_until
        if fresh:
            sent_at = max(self.clock(), waited_until)
            with self._lock:
                self.in_flight += 1
            return sent_at
        while self._shared():
            try:
                slot = self._reserve()
            except Exception as exc:
                self._lost(exc)
                break
            local_now = self.clock()
            self._learn(local_now, slot.now, slot.rate, slot.paused_until, slot.episodes)
            if slot.rate is None and slot.wait <= 0:
                with self._shared_lock:
                    self._free_until = local_now + self.refresh
            if slot.wait > 0:
                self.sleep(slot.wait)
            with self._shared_lock:
                # A pause or a lower pace that began after this slot was reserved voids it.
                void = self._known_episodes > slot.episodes or self._known_pause > slot.paused_until + 1e-3
            if slot.taken and not void:
                if slot.rate is not None:
                    self._space_out(slot.rate)
                sent_at = max(self.clock(), waited_until)
                with self._lock:
                    self.sent_at_pace(sent_at, slot.rate)
                    self.in_flight += 1
                return sent_at
        return super().acquire(waited_until)

    def _space_out(self, rate: float) -> None:
        """Sleep until one interval of the pace after this process's last send.

        Slots are reserved ahead on the pace's grid; a caller that woke late for its slot
        would otherwise be followed by the next slot's caller on time, closer than the
        pace allows (a server with a burst of one refuses that).
        """
        while True:
            with self._shared_lock:
                now = self.clock()
                wait = self._last_send + 1.0 / rate - now
                if wait <= 1e-3:
                    self._last_send = now
                    return
            self.sleep(wait)

    def succeeded(self) -> None:
        with self._shared_lock:
            self._pending += 1
        super().succeeded()  # the local measure, for when the store is away

    def throttled(self, sent_at: float, retry_after: float) -> float:
        with self._shared_lock:
            self._free_until = -math.inf
        if self._shared():
            try:
                paused_until, rate, episodes, db_now = self._throttle(sent_at, retry_after)
            except Exception as exc:
                self._lost(exc)
            else:
                local_now = self.clock()
                self._learn(local_now, db_now, rate, paused_until, episodes)
                # This caller waits out its own Retry-After (tenacity sleeps it), from now.
                return local_now + max(retry_after, 0.0)
        return super().throttled(sent_at, retry_after)


def shared_pacer(engine: Engine, key: str, template: Pacer) -> SharedPacer:
    """A SharedPacer with `template`'s settings (budget, clock, sleep, ...)."""
    return SharedPacer(
        engine,
        key,
        budget=template.budget,
        clock=template.clock,
        sleep=template.sleep,
        decrease=template.decrease,
        increase=template.increase,
        recover=template.recover,
        probe=template.probe,
        floor=template.floor,
        ceiling=template.ceiling,
        burst=template.burst,
        window=template.window,
        min_span=template.min_span,
        settle=template.settle,
        harder=template.harder,
        reach=template.reach,
        log_every=template.log_every,
    )


def share_pacing(client: InvoicedClient, engine: Engine) -> None:
    """Pace `client` with its account's other processes through `engine`'s store, when the
    client asks for it (`pace_key`, set by syncd.engine.connect) and does not already."""
    if client.pace_key is None or isinstance(client.pacer, SharedPacer):
        return
    client.pacer = shared_pacer(engine, client.pace_key, client.pacer)
