"""Reconciliation errors: records a connector refused and payments the push-back refused or held.

    list_refusals(store, ...)    dead letters and refused/held payments, filtered, newest first
    summarise(refusals)          counts by connector, stream and reason
    find(store, ids)             refusals by id (or a unique prefix of one)
    ignore(store, refusals)      keep them out of the counts and of /healthz until they change
    retry(settings, refusals)    re-deliver from the store (no request to Invoiced); re-queue payments

IDs are short, stable and typeable: `d` + 8 hex digits of (connector, stream, record id) for a
refused record, `p` + 8 hex digits of the external id for a payment. Any unique prefix of at
least 4 characters is accepted, as is `CONNECTOR/STREAM/RECORD_ID` or `payment/EXTERNAL_ID`.

An ignored dead letter keeps the content hash of the record it was ignored at (`Meta`
`ignored:CONNECTOR/STREAM/ID`): when the record changes, it counts again. An ignored payment
is `dismissed` (its outbox state).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import structlog
from sqlalchemy import Table, and_, delete, select

from syncd.errors import SyncdError
from syncd.pushback.outbox import DISMISSED, HELD, OUTBOX, REJECTED, ignore_payment, retry_payment
from syncd.store import Store
from syncd.store.models import DeadLetter, Delivery, Meta, RawRecord

log = structlog.get_logger(__name__)

DEAD: Table = DeadLetter.__table__  # type: ignore[attr-defined]
RAW: Table = RawRecord.__table__  # type: ignore[attr-defined]
META: Table = Meta.__table__  # type: ignore[attr-defined]
DELIVERY: Table = Delivery.__table__  # type: ignore[attr-defined]

PAYMENTS = "payments"  # the `stream` of push-back refusals
IGNORED = "ignored:"
_MIN_PREFIX = 4
_CHUNK = 500

# What the connector holds for a refused record: its last good state is kept.
KEPT_OLDER = "older version"  # delivered before, under this mapping; the record changed since
KEPT_MAPPING = "earlier mapping"  # a row made by an earlier mapping (its columns may differ)
KEPT_NONE = "nothing"  # never delivered (under this mapping)


@dataclass
class Refusal:
    """One row of `syncd errors`."""

    id: str
    connector: str
    stream: str
    record: str
    reason: str
    first_seen: float
    last_seen: float
    attempts: int
    ignored: bool = False
    # dead letter: what the connector holds instead (KEPT_*); payment: its outbox state
    state: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_payment(self) -> bool:
        return self.stream == PAYMENTS

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["reason_kind"] = reason_kind(self.reason, self.record)
        return out


def refusal_id(connector: str, stream: str, record: str) -> str:
    """The stable short id of a refused record (`d…`) or payment (`p…`)."""
    if stream == PAYMENTS:
        return "p" + hashlib.sha1(record.encode()).hexdigest()[:8]  # noqa: S324 - a label, not security
    key = f"{connector}\x00{stream}\x00{record}"
    return "d" + hashlib.sha1(key.encode()).hexdigest()[:8]  # noqa: S324


_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_NUMBER = re.compile(r"\b\d+(?:\.\d+)?\b")


def reason_kind(reason: str, record: str = "") -> str:
    """A reason without what differs per record (its id, quoted values, numbers), for counting."""
    text = reason
    if record:
        text = text.replace(f" {record}:", " ID:")
    text = _QUOTED.sub("…", text)
    text = _NUMBER.sub("N", text)
    return " ".join(text.split())[:160]


def ignored_key(connector: str, stream: str, record: str) -> str:
    return f"{IGNORED}{connector}/{stream}/{record}"


def parse_since(text: str) -> float:
    """`2024-03-01`, `2024-03-01T12:00`, or an age: `90m`, `12h`, `7d`."""
    value = text.strip()
    m = re.fullmatch(r"(\d+)\s*([mhd])", value)
    if m:
        return time.time() - int(m.group(1)) * {"m": 60, "h": 3600, "d": 86400}[m.group(2)]
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise SyncdError(
            f"--since {text!r}: give a date (2024-03-01), a date and time (2024-03-01T12:00, UTC) "
            "or an age (90m, 12h, 7d)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


# -- reading ------------------------------------------------------------------------------


def _ignored(store: Store) -> dict[str, str]:
    with store.engine.connect() as conn:
        rows = conn.execute(select(META.c.key, META.c.value).where(META.c.key.like(f"{IGNORED}%")))
        return {k: v for k, v in rows}


def _raw_hashes(store: Store, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """Current content hash ("deleted" for a deleted record) by (stream, id)."""
    by_stream: dict[str, list[str]] = {}
    for stream, rid in keys:
        by_stream.setdefault(stream, []).append(rid)
    out: dict[tuple[str, str], str] = {}
    for stream, ids in by_stream.items():
        out.update(((stream, rid), h) for rid, h in store.raw_versions(stream, ids).items())
    return out


def _held(store: Store, letters: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str, str], str]:
    """What each refused record's connector holds instead (its last good state)."""
    groups: dict[tuple[str, str], list[str]] = {}
    for d in letters:
        groups.setdefault((d["connector"], d["stream"]), []).append(d["record_id"])
    delivered: set[tuple[str, str, str]] = set()
    rows_kept: set[tuple[str, str, str]] = set()
    with store.engine.connect() as conn:
        for (connector, stream), ids in groups.items():
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start : start + _CHUNK]
                found = conn.execute(
                    select(DELIVERY.c.record_id)
                    .where(DELIVERY.c.connector == connector, DELIVERY.c.stream == stream)
                    .where(DELIVERY.c.record_id.in_(chunk))
                )
                delivered.update((connector, stream, rid) for (rid,) in found)
    for (connector, stream), ids in groups.items():
        rows_kept.update((connector, stream, rid) for rid in store.outputs(connector).held(stream, ids))
    out = {}
    for key in ((d["connector"], d["stream"], d["record_id"]) for d in letters):
        out[key] = KEPT_OLDER if key in delivered else KEPT_MAPPING if key in rows_kept else KEPT_NONE
    return out


def list_refusals(
    store: Store,
    *,
    connector: str | None = None,
    stream: str | None = None,
    reason: str | None = None,
    since: float | None = None,
    include_ignored: bool = False,
    with_held: bool = True,
) -> list[Refusal]:
    """Refused records and payments matching every filter given, newest first.

    `with_held=False` skips finding out what each connector holds instead (for counting).
    """
    from syncd.streams import STREAMS

    if stream is not None and stream not in (*STREAMS, PAYMENTS):
        raise SyncdError(f"unknown stream {stream!r}; streams: {', '.join((*STREAMS, PAYMENTS))}")
    out: list[Refusal] = []
    if stream in (None, PAYMENTS):
        out.extend(_payments(store, connector, include_ignored))
    if stream != PAYMENTS:
        out.extend(_dead_letters(store, connector, stream, include_ignored, with_held))
    if reason:
        needle = reason.lower()
        out = [r for r in out if needle in r.reason.lower()]
    if since is not None:
        out = [r for r in out if r.last_seen >= since]
    out.sort(key=lambda r: (-r.last_seen, r.connector, r.stream, r.record))
    return out


def _dead_letters(
    store: Store, connector: str | None, stream: str | None, include_ignored: bool, with_held: bool = True
) -> list[Refusal]:
    stmt = select(DEAD)
    if connector:
        stmt = stmt.where(DEAD.c.connector == connector)
    if stream:
        stmt = stmt.where(DEAD.c.stream == stream)
    with store.engine.connect() as conn:
        letters = [dict(r) for r in conn.execute(stmt).mappings()]
    if not letters:
        return []
    ignored = _ignored(store)
    wanted = [
        (d["stream"], d["record_id"])
        for d in letters
        if ignored_key(d["connector"], d["stream"], d["record_id"]) in ignored
    ]
    current = _raw_hashes(store, wanted)
    held = _held(store, letters) if with_held else {}
    out = []
    for d in letters:
        mark = ignored.get(ignored_key(d["connector"], d["stream"], d["record_id"]))
        is_ignored = mark is not None and mark == current.get((d["stream"], d["record_id"]), "-")
        if is_ignored and not include_ignored:
            continue
        key = (d["connector"], d["stream"], d["record_id"])
        out.append(
            Refusal(
                refusal_id(*key),
                d["connector"],
                d["stream"],
                d["record_id"],
                d["reason"],
                float(d["first_seen"]),
                float(d["last_seen"]),
                int(d["attempts"]),
                is_ignored,
                held.get(key, ""),
            )
        )
    return out


def _payments(store: Store, source: str | None, include_ignored: bool) -> list[Refusal]:
    states = (REJECTED, HELD, DISMISSED) if include_ignored else (REJECTED, HELD)
    stmt = select(OUTBOX).where(OUTBOX.c.state.in_(states))
    if source:
        stmt = stmt.where(OUTBOX.c.source == source)
    with store.engine.connect() as conn:
        rows = list(conn.execute(stmt).mappings())
    return [
        Refusal(
            refusal_id(r["source"], PAYMENTS, r["external_id"]),
            r["source"],
            PAYMENTS,
            r["external_id"],
            r["reason"] or "",
            float(r["created_at"]),
            float(r["updated_at"]),
            int(r["attempts"]),
            r["state"] == DISMISSED,
            r["state"],
            {"origin": r["origin"], "invoice_id": r["invoice_id"]},
        )
        for r in rows
    ]


def summarise(refusals: Sequence[Refusal]) -> dict[str, dict[str, int]]:
    """Counts by connector, by stream and by reason (most frequent first)."""

    def count(values: Iterable[str]) -> dict[str, int]:
        return dict(sorted(Counter(values).items(), key=lambda kv: (-kv[1], kv[0])))

    return {
        "connector": count(r.connector for r in refusals),
        "stream": count(r.stream for r in refusals),
        "connector/stream": count(f"{r.connector}/{r.stream}" for r in refusals),
        "reason": count(reason_kind(r.reason, r.record) for r in refusals),
    }


def open_count(store: Store) -> int:
    """Refusals not ignored: what /healthz and the metrics report."""
    return len(list_refusals(store, with_held=False))


def find(store: Store, ids: Sequence[str]) -> list[Refusal]:
    """The refusals named by `ids` (ignored ones included); SyncdError naming an unknown id."""
    every = list_refusals(store, include_ignored=True)
    by_id = {r.id: r for r in every}
    long = {f"{r.connector}/{r.stream}/{r.record}": r for r in every if not r.is_payment}
    long.update({f"payment/{r.record}": r for r in every if r.is_payment})
    out: list[Refusal] = []
    for wanted in ids:
        text = wanted.strip()
        hit = by_id.get(text.lower()) or long.get(text)
        if hit is None:
            matches = [r for i, r in by_id.items() if len(text) >= _MIN_PREFIX and i.startswith(text.lower())]
            if len(matches) > 1:
                raise SyncdError(
                    f"error id {text!r} is ambiguous: {', '.join(sorted(m.id for m in matches))}"
                )
            if not matches:
                raise SyncdError(f"no error with id {text!r} (`syncd errors --ignored` lists every id)")
            hit = matches[0]
        if hit not in out:
            out.append(hit)
    return out


# -- acting -------------------------------------------------------------------------------


def ignore(store: Store, refusals: Sequence[Refusal]) -> list[Refusal]:
    """Set these aside until their record changes (payments: `dismissed`). Returns those ignored."""
    done = []
    letters = [r for r in refusals if not r.is_payment]
    current = _raw_hashes(store, [(r.stream, r.record) for r in letters])
    for r in letters:
        store.set_meta(ignored_key(r.connector, r.stream, r.record), current.get((r.stream, r.record), "-"))
        done.append(r)
    for r in refusals:
        if r.is_payment and ignore_payment(store, r.record) is not None:
            done.append(r)
    return done


def forget_ignored(store: Store, connector: str, stream: str, records: Sequence[str]) -> None:
    """Drop the ignore marks of records that are no longer refused."""
    keys = [ignored_key(connector, stream, rid) for rid in records]
    with store.engine.begin() as conn:
        for start in range(0, len(keys), _CHUNK):
            conn.execute(delete(Meta).where(META.c.key.in_(keys[start : start + _CHUNK])))


@dataclass
class RetryReport:
    """What `syncd errors retry` did."""

    delivered: dict[str, int] = field(default_factory=dict)  # connector/stream -> records now delivered
    refused: list[Refusal] = field(default_factory=list)  # still refused after the retry
    payments: dict[str, str] = field(default_factory=dict)  # external id -> new state
    unchanged: list[str] = field(default_factory=list)  # ids that could not be retried
    redelivered: dict[str, int] = field(default_factory=dict)  # after a mapping change

    def as_dict(self) -> dict[str, Any]:
        return {
            "delivered": dict(self.delivered),
            "still_refused": [r.as_dict() for r in self.refused],
            "payments": dict(self.payments),
            "unchanged": list(self.unchanged),
            "redelivered": dict(self.redelivered),
        }


def retry(settings: Any, store: Store, refusals: Sequence[Refusal]) -> RetryReport:
    """Re-deliver refused records from the store through each connector's current mapping, and
    send refused or held payments back to the outbox. Nothing is fetched from Invoiced."""
    report = RetryReport()
    for r in refusals:
        if r.is_payment:
            state = retry_payment(store, r.record)
            if state is None:
                report.unchanged.append(r.id)
            else:
                report.payments[r.record] = state
    letters = [r for r in refusals if not r.is_payment]
    if letters:
        _retry_records(settings, store, letters, report)
    return report


def _retry_records(settings: Any, store: Store, letters: Sequence[Refusal], report: RetryReport) -> None:
    """The records part of `retry`: open only the connectors concerned, deliver, close."""
    from syncd import registry
    from syncd.delivery import Delivery, StreamReport, Target, close_targets, redeliver

    wanted = sorted({r.connector for r in letters})
    specs = [s for s in registry.configured(settings) if s.name in wanted]
    missing = sorted(set(wanted) - {s.name for s in specs})
    if missing:
        raise SyncdError(
            f"connector {missing[0]!r} is not enabled in the configuration: cannot retry its errors"
        )
    mappings = registry.load_mappings(specs)
    run_id = store.start_run("retry")
    targets: list[Target] = []
    try:
        for spec in specs:
            connector = registry.build(spec, store, settings, mappings[spec.name])
            connector.open()
            targets.append(Target(spec.name, connector, mappings[spec.name]))
        # A changed mapping first re-delivers everything of its connector (as a sync would),
        # so retried rows and the others come from the same mapping.
        report.redelivered = redeliver(store, targets, Delivery(store, targets))
        for target in targets:
            if target.name in report.redelivered:
                continue  # every stored record of it was just tried through the new mapping
            only = Delivery(store, [target])
            mine = [r for r in letters if r.connector == target.name]
            for stream in sorted({r.stream for r in mine}):
                records = _stored_records(store, stream, [r.record for r in mine if r.stream == stream])
                scratch = StreamReport()
                only.deliver(stream, records, scratch, save=False)
                done = scratch.delivered.get(target.name, 0)
                if done:
                    report.delivered[f"{target.name}/{stream}"] = done
        close_targets(targets)
        targets = []
        store.finish_run(run_id, "ok", report.as_dict())
    except BaseException as exc:
        store.finish_run(run_id, "failed", {}, str(exc))
        raise
    finally:
        for target in targets:  # on failure: release what was opened, without rendering twice
            try:
                target.connector.close()
            except Exception as exc:  # the first error is the one to report
                log.debug("retry.close_failed", connector=target.name, error=str(exc))
    remaining = {r.id: r for r in list_refusals(store, include_ignored=True)}
    report.refused = [remaining[r.id] for r in letters if r.id in remaining]
    cleared = [r for r in letters if r.id not in remaining]
    for r in cleared:
        forget_ignored(store, r.connector, r.stream, [r.record])


def _stored_records(store: Store, stream: str, ids: Sequence[str]) -> list[Any]:
    """The stored raw records (deleted ones as deletions) of `ids`; unknown ids are left out."""
    from syncd.plugin import Record
    from syncd.store import loads

    out = []
    with store.engine.connect() as conn:
        for start in range(0, len(ids), _CHUNK):
            rows = conn.execute(
                select(RAW.c.record_id, RAW.c.updated_at, RAW.c.deleted, RAW.c.data).where(
                    and_(RAW.c.stream == stream, RAW.c.record_id.in_(ids[start : start + _CHUNK]))
                )
            )
            for rid, updated, deleted, data in rows:
                out.append(
                    Record(stream, rid, int(updated), {"id": rid} if deleted else loads(data), bool(deleted))
                )
    return out


def refused_everything(reports: Iterable[tuple[str, Any]]) -> list[str]:
    """`stream: connector refused all N records` where a connector delivered none of a stream's
    records in a run and refused some (`reports`: (stream, StreamReport) pairs)."""
    delivered: Counter[tuple[str, str]] = Counter()
    refused: Counter[tuple[str, str]] = Counter()
    for stream, report in reports:
        for name, n in report.delivered.items():
            delivered[(stream, name)] += n
        for name, n in report.rejected.items():
            refused[(stream, name)] += n
    return [
        f"{stream}: {name} refused all {n} record(s) (see `syncd errors --connector {name} --stream {stream}`)"
        for (stream, name), n in sorted(refused.items())
        if n and not delivered[(stream, name)]
    ]


def rows_behind(store: Store, connector: str) -> dict[str, int]:
    """Refused records whose rows at `connector` were made by an earlier mapping, by stream."""
    with store.engine.connect() as conn:
        letters = [
            dict(r) for r in conn.execute(select(DEAD).where(DEAD.c.connector == connector)).mappings()
        ]
    counts: Counter[str] = Counter()
    for (_, stream, _), held in _held(store, letters).items():
        if held == KEPT_MAPPING:
            counts[stream] += 1
    return dict(counts)


def warn_rows_behind(store: Store, connector: str) -> dict[str, int]:
    """After a mapping change: say loudly which rows still have the previous mapping's shape."""
    behind = rows_behind(store, connector)
    for stream, n in sorted(behind.items()):
        log.warning(
            "mapping.rows_behind",
            connector=connector,
            stream=stream,
            records=n,
            message=(
                f"the new mapping refused {n} {stream} record(s) that {connector} holds from the previous "
                f"mapping: their rows keep the old values and columns (new columns empty) until fixed; "
                f"see `syncd errors --connector {connector} --stream {stream}`"
            ),
        )
    return behind
