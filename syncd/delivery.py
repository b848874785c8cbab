"""Delivery: mapping records through each connector's mapping and handing them over.

    Delivery.deliver(stream, records)   save changed raw records; each target gets what it
                                        does not hold in this version; then the raw rows of
                                        deletions are marked deleted; then the records that
                                        refer to the changed ones
    redeliver(store, targets)           after a mapping change, from the store, no request

What a target holds is recorded per record (`Delivery` table) with the version it got, so a
re-run rewrites nothing and a kill loses nothing: a page's raw rows, the local targets' rows,
what each target now holds and the engine's cursor are one store transaction, written after
the targets that send requests (no store lock is held while they do).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from syncd import registry
from syncd.config import Settings
from syncd.errors import SyncdError
from syncd.mapping import MappingSet
from syncd.plugin import Connector, MappedRecord, PartialRejection, Record
from syncd.reconcile import warn_rows_behind
from syncd.store import Store, ref_id, text_hash
from syncd.store.store import dumps_record
from syncd.streams import STREAMS

log = structlog.get_logger(__name__)

DELETED_HASH = "deleted"
PARTIAL_HASH = "partial"  # a refused record the target partly wrote (see PartialRejection)


@dataclass
class StreamReport:
    """What one stream did in a run."""

    fetched: int = 0
    changed: int = 0
    deleted: int = 0
    delivered: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    error: str | None = None
    # rows a connector keeps from an earlier mapping because the new one refused their records
    behind: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "fetched": self.fetched,
            "changed": self.changed,
            "deleted": self.deleted,
            "delivered": dict(self.delivered),
            "rejected": dict(self.rejected),
            "requests": self.requests,
            **({"error": self.error} if self.error else {}),
            **({"behind": dict(self.behind)} if self.behind else {}),
        }

@dataclass
class Target:
    """An open connector with its mapping."""

    name: str
    connector: Connector
    mapping: MappingSet

    def streams(self) -> set[str]:
        return {s for s in STREAMS if self.mapping.tables_for(s)}

    @property
    def local(self) -> bool:
        """Its writes are store rows only (`Connector.local`): they join the page's transaction."""
        return bool(getattr(self.connector, "local", False))

    def references(self, stream: str) -> list[str]:
        """Reference fields (customer, invoice) the mapping reads through for `stream`."""
        return sorted(f for f in self.mapping.expands(stream) if f in REFERENCES)

@dataclass(frozen=True)
class _Versions:
    """A page's referred records (by reference field) and each record's version for them."""

    referred: dict[str, dict[str, tuple[str, dict[str, Any]] | None]]
    versions: dict[str, str]


@dataclass
class _Written:
    """What a target took from a page (`held`: id, version) and refused, not yet recorded."""

    target: str
    stream: str
    held: list[tuple[str, str]]
    rejected: list[tuple[str, str]]
    delivered: int


# Fields by which a record refers to another stream's record. Mappings may read through them
# (`customer.name` on an invoice); the referred record is read from the store, never from an
# API `expand`, so that a renamed customer re-delivers its invoices with the new name.
REFERENCES = {"customer": "customers", "invoice": "invoices"}


class Delivery:
    """Maps and writes records to every target, recording what each now holds.

    What a target holds is keyed by a hash of the record *and* of every record its mapping
    reads through a reference, so an edited customer makes its invoices due again.
    """

    def __init__(self, store: Store, targets: Sequence[Target]) -> None:
        self.store = store
        self.targets = targets

    def deliver(
        self,
        stream: str,
        records: Sequence[Record],
        report: StreamReport,
        *,
        save: bool = True,
        then: Callable[[], None] | None = None,
    ) -> None:
        """Save changed raw records and hand each target the ones it does not hold yet.

        Targets that send records over the network write first, outside any transaction
        (no store lock is held during their requests: the lease heartbeat writes to the
        same store). Then one transaction (`Store.page`) holds everything the page changes
        in the store: its raw rows, the local targets' rows (`Connector.local`) and what
        every target now holds. Then the local targets flush (render their files), and
        `then` runs (the engine moves the cursor): only once all it covers is durable.
        """
        if not records:
            if then is not None:
                then()
            return
        # Serialised once: the text gives the content hash and is what the store keeps.
        texts = {r.id: dumps_record(r.data) for r in records}
        hashes = {r.id: DELETED_HASH if r.deleted else text_hash(texts[r.id]) for r in records}
        changed: list[Record] = []
        known: dict[str, str] = {}
        # Changed records that stored records refer to: only their dependents are re-delivered
        # (on a first sync, none yet: no flag to set and clear on every customer and invoice).
        due: set[str] = set()
        if save:
            stored_at: dict[str, int] = {}
            known, referred = self.store.stored_state(stream, list(hashes), stored_at)
            # An older copy than the one stored (a page that arrived late: its request was
            # answered before an edit, the newer copy's after it) is not delivered over it.
            stale = {r.id for r in records if not r.deleted and r.updated_at < stored_at.get(r.id, r.updated_at)}
            if stale:
                log.info("records.stale", stream=stream, records=len(stale), example=min(stale))
                records = [r for r in records if r.id not in stale]
            changed = [
                r for r in records if known.get(r.id) != hashes[r.id] and not (r.deleted and r.id not in known)
            ]
            due = {r.id for r in changed} & referred
        live = [r for r in changed if not r.deleted]
        # A deletion of a stored record goes to every target that does not hold the deletion:
        # a kill between a connector's write and `commit_deliveries` leaves rows unrecorded.
        stored = frozenset(rid for rid in known if hashes[rid] == DELETED_HASH)
        targets = [t for t in self.targets if stream in t.streams()]
        # Targets whose mappings read the same references share one read of the referred
        # records and one set of versions for the page.
        shared: dict[tuple[str, ...], _Versions] = {}
        written = [
            self._write_to(t, stream, records, hashes, stored, shared) for t in targets if not t.local
        ]
        with self.store.page():
            if live:
                self.store.save_raw([(r, hashes[r.id]) for r in live], texts, due)
            written += [self._write_to(t, stream, records, hashes, stored, shared) for t in targets if t.local]
            for done in written:
                self._commit(done, report)
            # Marked deleted only once every target has taken the deletion: scope exit and the
            # events-gap reconciliation judge only live rows, so a failure or kill before the
            # commit leaves the row live and the next run delivers the deletion again.
            gone = [r for r in changed if r.deleted]
            if gone:
                self.store.save_raw([(r, hashes[r.id]) for r in gone], texts, due)
        report.changed += len(live)
        # Local targets render their files from committed rows (a render inside the page
        # would hold the store's write lock for as long as it takes), before `then`: a
        # render that fails (a full disk) leaves the cursor where it was.
        for target in targets:
            if target.local:
                self._flush(target, stream)
        if then is not None:
            then()
        if due:
            self.redeliver_dependents(stream, [r.id for r in changed if r.id in due])

    def catch_up_dependents(self) -> None:
        """Finish re-deliveries of dependents that a killed run left due."""
        for stream in sorted(set(REFERENCES.values())):
            while ids := self.store.dependents_due(stream):
                self.redeliver_dependents(stream, ids)

    def _deliver_to(
        self,
        target: Target,
        stream: str,
        records: Sequence[Record],
        hashes: Mapping[str, str],
        report: StreamReport,
        stored: frozenset[str] = frozenset(),
    ) -> None:
        """Write to one target and record what it now holds (a local one's rows and that
        record in one transaction)."""
        if target.local:
            with self.store.page():
                self._commit(self._write_to(target, stream, records, hashes, stored), report)
            self._flush(target, stream)
        else:
            self._commit(self._write_to(target, stream, records, hashes, stored), report)

    def _write_to(
        self,
        target: Target,
        stream: str,
        records: Sequence[Record],
        hashes: Mapping[str, str],
        stored: frozenset[str] = frozenset(),
        shared: dict[tuple[str, ...], _Versions] | None = None,
    ) -> _Written | None:
        """Map and write the records `target` does not hold (flushed, unless it is local);
        what it took and refused, for `_commit`; None when it holds them all.

        `shared` keeps the referred records and versions of a page by reference set, for the
        page's other targets.
        """
        refs = target.references(stream)
        key = tuple(refs)
        # A page's own stream is saved between its remote and local targets: what a mapping
        # reads from it is read again, never shared.
        found = None if shared is None or stream in {REFERENCES[f] for f in refs} else shared.get(key)
        if found is None:
            referred = self._referred(stream, records, refs)
            versions = {
                r.id: hashes[r.id] if r.deleted or not refs else _versioned(hashes[r.id], r, refs, referred)
                for r in records
            }
            found = _Versions(referred, versions)
            if shared is not None:
                shared[key] = found
        referred, versions = found.referred, found.versions
        held = self.store.delivered_hashes(target.name, stream, list(versions))
        todo = [
            r
            for r in records
            if held.get(r.id) != versions[r.id] and not (r.deleted and r.id not in held and r.id not in stored)
        ]
        if not todo:
            return None
        # Referred ids not in the store are remembered as None: no query per miss.
        data = {
            (REFERENCES[f], rid): hit[1] if hit else None for f in refs for rid, hit in referred[f].items()
        }

        def resolve(ref_stream: str, rid: str) -> Mapping[str, Any] | None:
            key = (ref_stream, rid)
            return data[key] if key in data else self.store.get_raw(ref_stream, rid)

        mapped, rejected = [], []
        for record in todo:
            try:
                tables = {} if record.deleted else target.mapping.apply(record, resolve)
            except (SyncdError, ValueError, TypeError, KeyError, ArithmeticError) as exc:
                rejected.append((record.id, f"mapping failed: {exc}"))
                continue
            mapped.append(MappedRecord(record, tables))
        with structlog.contextvars.bound_contextvars(connector=target.name, stream=stream):
            refusals = target.connector.write(stream, mapped) if mapped else []
            if not target.local:
                target.connector.flush()
        rejected.extend((r.record_id, r.reason) for r in refusals)
        refused = {rid for rid, _ in rejected}
        done = [(r.id, versions[r.id]) for r in todo if r.id not in refused]
        # Partly written: held under a version no record has, so a later delete is delivered.
        partly = {r.record_id for r in refusals if isinstance(r, PartialRejection)}
        held_part = [(r.id, PARTIAL_HASH) for r in todo if r.id in partly and r.id in refused]
        return _Written(target.name, stream, done + held_part, rejected, len(done))

    def _commit(self, written: _Written | None, report: StreamReport) -> None:
        """Record what a target now holds and refused (in the open page, if any)."""
        if written is None:
            return
        name = written.target
        self.store.commit_deliveries(name, written.stream, written.held, written.rejected)
        report.delivered[name] = report.delivered.get(name, 0) + written.delivered
        if written.rejected:
            report.rejected[name] = report.rejected.get(name, 0) + len(written.rejected)
            for rid, reason in written.rejected:
                log.warning("record.rejected", connector=name, stream=written.stream, record_id=rid, reason=reason)

    @staticmethod
    def _flush(target: Target, stream: str) -> None:
        with structlog.contextvars.bound_contextvars(connector=target.name, stream=stream):
            target.connector.flush()

    def _referred(
        self, stream: str, records: Sequence[Record], refs: Sequence[str]
    ) -> dict[str, dict[str, tuple[str, dict[str, Any]] | None]]:
        """For each reference field: the referred records' (content hash, data) by id, None when
        not stored; one query each."""
        out: dict[str, dict[str, tuple[str, dict[str, Any]] | None]] = {}
        for field_name in refs:
            ids = {rid for r in records if not r.deleted and (rid := ref_id(r.data, field_name))}
            found = self.store.get_raw_many(REFERENCES[field_name], ids)
            out[field_name] = {rid: found.get(rid) for rid in ids}
        return out

    def redeliver_dependents(self, stream: str, ids: Sequence[str]) -> None:
        """Re-deliver stored records that read `stream`'s changed records through a reference."""
        for field_name, referred_stream in REFERENCES.items():
            if referred_stream != stream:
                continue
            for dependent in STREAMS:
                for target in self.targets:
                    if field_name not in target.references(dependent):
                        continue
                    # The stored hash is `content_hash` of the stored data: no need to encode it again.
                    hashed = self.store.raw_referring_hashed(dependent, field_name, ids)
                    records = [record for record, _ in hashed]
                    scratch = StreamReport()
                    self._deliver_to(target, dependent, records, {r.id: h for r, h in hashed}, scratch)
                    if scratch.delivered:
                        log.info(
                            "dependents.redelivered",
                            connector=target.name,
                            stream=dependent,
                            because=stream,
                            records=scratch.delivered.get(target.name, 0),
                        )
        self.store.clear_dependents_due(stream, ids)


def _versioned(
    own: str,
    record: Record,
    refs: Sequence[str],
    referred: Mapping[str, Mapping[str, tuple[str, Any] | None]],
) -> str:
    """The record's hash combined with those of the records its mapping reads through references."""
    parts = [own]
    for field_name in refs:
        found = referred[field_name].get(ref_id(record.data, field_name) or "")
        parts.append(f"{field_name}={found[0] if found else '-'}")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]

def redeliver(
    store: Store,
    targets: Sequence[Target],
    delivery: Delivery,
    reports: dict[str, StreamReport] | None = None,
) -> dict[str, int]:
    """Re-deliver stored records to connectors whose mapping changed, and retry dead letters.

    Nothing is fetched: the raw records in the store are mapped again. Other connectors
    are not touched. `reports` (by stream) receives what was delivered and refused.
    """
    counts: dict[str, int] = {}
    for target in targets:
        key = f"mapping:{target.name}"
        fingerprint = target.mapping.fingerprint
        if store.get_meta(key) == fingerprint:
            continue
        streams = sorted(target.streams())
        store.forget_deliveries(target.name)
        only = Delivery(store, [target])
        total = 0
        for stream in streams:
            report = StreamReport() if reports is None else reports.setdefault(stream, StreamReport())
            before = report.delivered.get(target.name, 0)
            for batch in store.iter_raw(stream, include_deleted=False):
                only.deliver(stream, batch, report, save=False)
            total += report.delivered.get(target.name, 0) - before
        store.set_meta(key, fingerprint)
        counts[target.name] = total
        if total:
            log.info("mapping.redelivered", connector=target.name, records=total)
        for stream, n in warn_rows_behind(store, target.name).items():
            if reports is not None:
                reports.setdefault(stream, StreamReport()).behind[target.name] = n
    return counts

def open_targets(
    settings: Settings, store: Store, mappings: Mapping[str, MappingSet] | None = None
) -> list[Target]:
    """Build and open every enabled connector with its mapping (loaded now unless given)."""
    specs = registry.configured(settings)
    if mappings is None or any(spec.name not in mappings for spec in specs):
        mappings = registry.load_mappings(specs)
    targets = []
    for spec in specs:
        connector = registry.build(spec, store, settings, mappings[spec.name])
        connector.open()
        targets.append(Target(spec.name, connector, mappings[spec.name]))
    return targets


def close_targets(targets: Sequence[Target]) -> None:
    for target in targets:
        with structlog.contextvars.bound_contextvars(connector=target.name):
            target.connector.close()
