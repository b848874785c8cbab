"""HubSpot CRM connector: customers as companies (and their billing contact), invoices as deals.

Every object is upserted on a unique custom property holding the Invoiced id
(`invoiced_customer_id` on companies and contacts, `invoiced_invoice_id` on deals), so a
re-run updates what is there and never creates a twin. Deals and contacts are associated
with their company. A deleted, voided or filtered-out invoice archives its deal; a deleted
customer archives its company and contact only when `archive_deleted_companies` is set.
A contact that already exists with the billing email (HubSpot keeps emails unique) and is
not linked to another Invoiced customer is taken over rather than duplicated.

Columns the mapping declares `write = "if_empty"` are only written where HubSpot's value
is empty (read just before the upsert). A record partly written is refused as a
`PartialRejection`, so its later deletion still reaches the connector. The customers
whose company syncd wrote are kept in the connector's output rows: a company missing in
HubSpot after that was deleted there, and is not brought back as a nameless stub.

The engine takes per-record refusals from `write()`, so `write()` sends its batches itself
(up to `batch_size` inputs per request) and returns HubSpot's per-input errors as
rejections; `flush()` has nothing left to send: what `write()` accepted is in HubSpot.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import structlog
from pydantic import Field, SecretStr

from connectors.hubspot.client import BatchOutcome, HubSpotClient, RetryPolicy
from syncd import log as syncd_log
from syncd.plugin import (
    ConfigError,
    Connector,
    ConnectorContext,
    ConnectorSettings,
    MappedRecord,
    PartialRejection,
    Rejection,
    TableSpec,
)

log = structlog.get_logger(__name__)

TOKEN_ENV = "HUBSPOT_TOKEN"  # noqa: S105 - the variable's name, not a token
# The column of the contacts and deals tables naming the Invoiced customer whose company
# the object is associated with. On deals it is not sent as a property.
COMPANY_COLUMN = "invoiced_customer_id"
# Datetime properties: HubSpot documents ISO 8601 date-times or epoch milliseconds for them.
DATETIME_PROPERTIES = {"deals": frozenset({"closedate"})}
CURRENCY_PROPERTY = "deal_currency_code"
_BARE_DATE = re.compile(r"\d{4}-\d\d-\d\d")
# The connector's table in the store: customers whose company syncd has written.
WRITTEN_COMPANIES = "companies"


@dataclass(frozen=True)
class ObjectKind:
    """One HubSpot object type syncd writes: its mapping table and unique key property."""

    table: str
    object_type: str
    key: str
    label: str
    group: str


COMPANIES = ObjectKind(
    "companies", "companies", "invoiced_customer_id", "Invoiced customer ID", "companyinformation"
)
CONTACTS = ObjectKind(
    "contacts", "contacts", "invoiced_customer_id", "Invoiced customer ID", "contactinformation"
)
DEALS = ObjectKind("deals", "deals", "invoiced_invoice_id", "Invoiced invoice ID", "dealinformation")
KINDS = (COMPANIES, CONTACTS, DEALS)


class HubSpotSettings(ConnectorSettings):
    """`[connectors.hubspot]`"""

    token: SecretStr = Field(SecretStr(""), description=f"private-app token; else the {TOKEN_ENV} variable")
    base_url: str = "https://api.hubapi.com"
    timeout: float = Field(30.0, gt=0)
    create_properties: bool = Field(False, description="create missing unique id properties at start")
    archive_deleted_companies: bool = Field(False, description="archive the company of a deleted customer")
    batch_size: int = Field(100, ge=1, le=100, description="inputs per batch request (HubSpot's max is 100)")
    retry_attempts: int = Field(8, ge=1)
    retry_budget: float = Field(300.0, gt=0, description="seconds a request may spend retrying")


@dataclass
class _Batch:
    """What one write() sends, per object kind."""

    upserts: dict[str, list[tuple[str, dict[str, Any]]]] = field(default_factory=dict)
    archives: dict[str, list[str]] = field(default_factory=dict)
    # (kind table, object key) -> Invoiced customer id of the company to associate with
    links: dict[tuple[str, str], str] = field(default_factory=dict)
    # (kind table, object key) -> the record id it came from
    owners: dict[tuple[str, str], str] = field(default_factory=dict)
    # records of which at least one object was upserted
    written: set[str] = field(default_factory=set)
    # records refused before anything was sent -> why
    refused: dict[str, str] = field(default_factory=dict)


class HubSpotConnector(Connector):
    """Keeps HubSpot companies, contacts and deals in step with Invoiced."""

    name: ClassVar[str] = "hubspot"
    settings_model: ClassVar[type[ConnectorSettings]] = HubSpotSettings
    tables: ClassVar[dict[str, TableSpec]] = {
        "companies": TableSpec(
            "customers",
            frozenset({"invoiced_customer_id", "name"}),
            "one HubSpot company per customer; columns are company property names",
        ),
        "contacts": TableSpec(
            "customers",
            frozenset({"invoiced_customer_id", "email"}),
            "the customer's billing contact; columns are contact property names",
        ),
        "deals": TableSpec(
            "invoices",
            frozenset(
                {
                    "invoiced_invoice_id",
                    "invoiced_customer_id",
                    "dealname",
                    "amount",
                    "closedate",
                    "dealstage",
                }
            ),
            "one deal per invoice; invoiced_customer_id names the company it is associated with",
        ),
    }

    settings: HubSpotSettings

    def __init__(
        self, settings: ConnectorSettings, context: ConnectorContext, *, client: HubSpotClient | None = None
    ) -> None:
        super().__init__(settings, context)
        self._client = client
        self._company_ids: dict[str, str] = {}
        self._known: set[str] | None = None  # customers whose company syncd wrote (from the store)
        self._currencies: frozenset[str] | None = None  # the account's, read before the first deal
        self._currencies_read = False

    # -- lifecycle ------------------------------------------------------------------
    def open(self) -> None:
        """Connect and check that the unique id properties exist (creating them when configured)."""
        if self._client is None:
            token = self.settings.token.get_secret_value() or os.environ.get(TOKEN_ENV, "")
            if not token:
                raise ConfigError(
                    f"no HubSpot private-app token: set token in [connectors.hubspot] or {TOKEN_ENV}",
                    key="connectors.hubspot.token",
                )
            syncd_log.register_secret(token)
            policy = RetryPolicy(attempts=self.settings.retry_attempts, budget=self.settings.retry_budget)
            self._client = HubSpotClient.connect(
                self.settings.base_url, token, timeout=self.settings.timeout, policy=policy
            )
        self.check_properties()

    @property
    def client(self) -> HubSpotClient:
        """The HubSpot client (after open())."""
        if self._client is None:
            raise ConfigError("the HubSpot connector is not open", key="connectors.hubspot")
        return self._client

    def _kinds(self) -> list[ObjectKind]:
        mapped = set(self.context.columns)
        return [k for k in KINDS if not mapped or k.table in mapped]

    def check_properties(self) -> None:
        """Each object type's unique key property must exist and be unique, else ConfigError naming it."""
        for kind in self._kinds():
            found = self.client.get_property(kind.object_type, kind.key)
            if found is None:
                if not self.settings.create_properties:
                    raise ConfigError(
                        f"HubSpot {kind.object_type} property {kind.key!r} does not exist; create it as a "
                        f"unique property (hasUniqueValue) or set create_properties = true",
                        key="connectors.hubspot.create_properties",
                    )
                self.client.create_property(kind.object_type, _property_definition(kind))
                log.info("hubspot.property_created", object_type=kind.object_type, property=kind.key)
            elif not found.get("hasUniqueValue", False):
                raise ConfigError(
                    f"HubSpot {kind.object_type} property {kind.key!r} exists but is not unique "
                    f"(hasUniqueValue is false); upserts need a unique property",
                    key="connectors.hubspot",
                )

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def flush(self) -> None:
        """Nothing to do: write() returns only after HubSpot has accepted its batches."""

    # -- writing --------------------------------------------------------------------
    def write(self, stream: str, records: Sequence[MappedRecord]) -> list[Rejection]:
        """Upsert, associate and archive what `records` say; return per-record HubSpot errors."""
        batch = _Batch()
        failures: dict[str, list[str]] = {}
        for mapped in records:
            problem = _unsendable(mapped)
            if problem is not None:
                failures.setdefault(mapped.record.id, []).append(problem)
            elif stream == "customers":
                self._plan_customer(mapped, batch)
            elif stream == "invoices":
                self._plan_invoice(mapped, batch)
        for rid, reason in batch.refused.items():
            failures.setdefault(rid, []).append(reason)
        self._send(batch, failures)
        # A record partly written (its company, not its contact; a deal, not its association)
        # is still refused, but as held: deleting it later archives what was written.
        return [
            (PartialRejection if rid in batch.written else Rejection)(stream, rid, "; ".join(reasons))
            for rid, reasons in failures.items()
        ]

    def _account_currencies(self) -> frozenset[str] | None:
        """Read once, before the first deal: a deal in another currency is refused up front
        (HubSpot would refuse each one, and a batch of them as a whole)."""
        if not self._currencies_read:
            self._currencies_read = True
            self._currencies = self.client.account_currencies()
            if self._currencies is None:
                log.warning("hubspot.currencies_unknown", reason="account details not readable")
            else:
                log.info("hubspot.account_currencies", currencies=sorted(self._currencies))
        return self._currencies

    def _known_companies(self) -> set[str]:
        if self._known is None:
            self._known = {str(row["id"]) for row in self.context.outputs.rows(WRITTEN_COMPANIES)}
        return self._known

    def _plan_customer(self, mapped: MappedRecord, batch: _Batch) -> None:
        record = mapped.record
        company = _first_row(mapped.tables.get(COMPANIES.table))
        if record.deleted or company is None:
            if self.settings.archive_deleted_companies:
                for kind in (COMPANIES, CONTACTS):
                    batch.archives.setdefault(kind.table, []).append(record.id)
            return
        key = _key(company, COMPANIES, record.id)
        batch.upserts.setdefault(COMPANIES.table, []).append((key, company))
        batch.owners[(COMPANIES.table, key)] = record.id
        contact = _first_row(mapped.tables.get(CONTACTS.table))
        if contact is not None and _has_person(contact):
            ckey = _key(contact, CONTACTS, record.id)
            batch.upserts.setdefault(CONTACTS.table, []).append((ckey, contact))
            batch.owners[(CONTACTS.table, ckey)] = record.id
            batch.links[(CONTACTS.table, ckey)] = str(contact.get(COMPANY_COLUMN) or key)

    def _plan_invoice(self, mapped: MappedRecord, batch: _Batch) -> None:
        record = mapped.record
        deal = _first_row(mapped.tables.get(DEALS.table))
        voided = record.data.get("status") == "voided" or record.data.get("voided") is True
        if deal is None and not record.deleted and not voided and record.data.get("draft") is True:
            return  # a draft never had a deal (Invoiced issues, never un-issues, an invoice)
        if record.deleted or voided or deal is None:
            # A deal whose invoice is gone, voided or filtered out is no longer a deal.
            batch.archives.setdefault(DEALS.table, []).append(record.id)
            return
        currency = str(deal.get(CURRENCY_PROPERTY) or "").upper()
        if currency and currency not in (self._account_currencies() or {currency}):
            batch.refused[record.id] = (
                f"deal currency {currency} is not a currency of the HubSpot account "
                f"({', '.join(sorted(self._currencies or ()))}): add it in HubSpot's account currencies"
            )
            return
        key = _key(deal, DEALS, record.id)
        properties = {k: _datetime(k, v, DEALS) for k, v in deal.items() if k != COMPANY_COLUMN}
        batch.upserts.setdefault(DEALS.table, []).append((key, properties))
        batch.owners[(DEALS.table, key)] = record.id
        customer = deal.get(COMPANY_COLUMN)
        if customer not in (None, ""):
            batch.links[(DEALS.table, key)] = str(customer)

    def _send(self, batch: _Batch, failures: dict[str, list[str]]) -> None:
        kinds = {k.table: k for k in KINDS}
        written: dict[str, dict[str, str]] = {}
        for table in (COMPANIES.table, CONTACTS.table, DEALS.table):
            # HubSpot refuses a batch naming one id twice: the last version of an object wins.
            inputs = list(dict(batch.upserts.get(table, [])).items())
            # A record refused in part keeps its last good state: no contact without its company.
            inputs = [(k, p) for k, p in inputs if batch.owners.get((table, k), k) not in failures]
            kind = kinds[table]
            written[table] = {}
            fill = [c for c in self.context.fill_only.get(table, ()) if c != kind.key]
            for part in _chunks(inputs, self.settings.batch_size):
                chunk = self._unfilled(kind, part, fill) if fill else part
                outcome: BatchOutcome = self.client.batch_upsert(kind.object_type, kind.key, chunk)
                if outcome.conflicts:
                    self._adopt(kind, outcome, dict(chunk), fill)
                written[table].update(outcome.ids)
                batch.written.update(batch.owners.get((table, key), key) for key in outcome.ids)
                for key, message in outcome.errors.items():
                    owner = batch.owners.get((table, key), key)
                    failures.setdefault(owner, []).append(f"HubSpot {kind.object_type} {key}: {message}")
            if inputs:
                log.debug("hubspot.upserted", object_type=kind.object_type, count=len(written[table]))
            if table == COMPANIES.table:
                self._company_ids.update(written[table])
                self._remember(written[table])
        self._associate(batch, written, failures)
        for table, keys in batch.archives.items():
            kind = kinds[table]
            found = self.client.batch_read_ids(kind.object_type, kind.key, keys)
            if found:
                self.client.batch_archive(kind.object_type, list(found.values()))
                log.info("hubspot.archived", object_type=kind.object_type, count=len(found))
            for key in found:
                if kind is COMPANIES:
                    self._company_ids.pop(key, None)
            if kind is COMPANIES:
                self._forget(keys)

    def _remember(self, customers: Mapping[str, str]) -> None:
        """Keep the customers whose company syncd wrote (a missing one was then deleted in HubSpot)."""
        known = self._known_companies()
        new = sorted(c for c in customers if c not in known)
        if new:
            self.context.outputs.put_many([("customers", c, {WRITTEN_COMPANIES: [{"id": c}]}) for c in new])
            known.update(new)

    def _forget(self, customers: Sequence[str]) -> None:
        known = self._known_companies()
        for c in customers:
            if c in known:
                self.context.outputs.delete("customers", c)
                known.discard(c)

    def _unfilled(
        self, kind: ObjectKind, chunk: Sequence[tuple[str, dict[str, Any]]], fill: Sequence[str]
    ) -> list[tuple[str, dict[str, Any]]]:
        """The inputs less the fill-only properties that HubSpot already holds a value for.

        A column the mapping declares `write = "if_empty"` is only written where HubSpot's
        value is empty, and never cleared: what sales typed in HubSpot stays.
        """
        current = self.client.batch_read(kind.object_type, kind.key, [key for key, _ in chunk], fill)
        return [(key, _fill_empty(props, current.get(key, {}), fill)) for key, props in chunk]

    def _adopt(
        self,
        kind: ObjectKind,
        outcome: BatchOutcome,
        properties: Mapping[str, Mapping[str, Any]],
        fill: Sequence[str] = (),
    ) -> None:
        """Take over objects that already hold a unique value (a contact with the billing email).

        Sales teams usually have the billing contact already; creating it fails with a
        CONFLICT naming the existing object. When that object is not linked to another
        Invoiced record, syncd sets its key property on it and updates it like its own.
        """
        holders = self.client.read_properties(
            kind.object_type, sorted(set(outcome.conflicts.values())), [kind.key, *fill]
        )
        updates: dict[str, str] = {}
        for key, hs_id in outcome.conflicts.items():
            holder = (holders.get(hs_id) or {}).get(kind.key)
            if holder in (None, ""):
                updates[hs_id] = key
            elif holder != key:
                outcome.errors[key] += (
                    f" (HubSpot {kind.object_type} {hs_id} belongs to Invoiced id {holder})"
                )
        if not updates:
            return
        result = self.client.batch_update(
            kind.object_type,
            [
                (hs_id, {**_fill_empty(properties[key], holders.get(hs_id) or {}, fill), kind.key: key})
                for hs_id, key in updates.items()
            ],
        )
        for hs_id, key in updates.items():
            if hs_id in result.ids:
                outcome.errors.pop(key, None)
                outcome.ids[key] = hs_id
                log.info("hubspot.adopted", object_type=kind.object_type, key=key, hubspot_id=hs_id)
            else:
                outcome.errors[key] += f"; taking over {hs_id} failed: {result.errors.get(hs_id, '')}"

    def _associate(
        self, batch: _Batch, written: Mapping[str, Mapping[str, str]], failures: dict[str, list[str]]
    ) -> None:
        wanted = {(t, k): c for (t, k), c in batch.links.items() if k in written.get(t, {})}
        if not wanted:
            return
        companies = self._company_hubspot_ids(set(wanted.values()), failures, batch)
        for table in (CONTACTS.table, DEALS.table):
            pairs, by_from = [], {}
            for (t, key), customer in wanted.items():
                if t != table or customer not in companies:
                    continue
                hs_id = written[table][key]
                pairs.append((hs_id, companies[customer]))
                by_from[hs_id] = key
            if not pairs:
                continue
            object_type = CONTACTS.object_type if table == CONTACTS.table else DEALS.object_type
            failed = self.client.associate_default(object_type, COMPANIES.object_type, pairs)
            for hs_id, message in failed.items():
                key = by_from.get(hs_id, hs_id)
                owner = batch.owners.get((table, key), key)
                failures.setdefault(owner, []).append(
                    f"HubSpot association of {object_type} {key} with its company: {message}"
                )

    def _company_hubspot_ids(
        self, customers: set[str], failures: dict[str, list[str]], batch: _Batch
    ) -> dict[str, str]:
        """HubSpot company ids for Invoiced customer ids: cached, read, or created as stubs.

        A deal can arrive before its customer (streams are read concurrently); the stub,
        keyed on the same unique property, is the company the customer's own upsert fills in.
        """
        missing = sorted(c for c in customers if c not in self._company_ids)
        if missing:
            self._company_ids.update(
                self.client.batch_read_ids(COMPANIES.object_type, COMPANIES.key, missing)
            )
        absent = [c for c in missing if c not in self._company_ids]
        # A company syncd wrote and HubSpot no longer has was deleted there by a user: do not
        # bring it back as a nameless stub; the customer's next change re-creates it whole.
        known = self._known_companies()
        for customer in (c for c in absent if c in known):
            for (table, key), linked in batch.links.items():
                if linked == customer:
                    owner = batch.owners.get((table, key), key)
                    failures.setdefault(owner, []).append(
                        f"HubSpot company of customer {customer} was deleted in HubSpot; it is re-created "
                        "when the customer changes in Invoiced (then retry with `syncd errors retry`)"
                    )
        stubs: list[tuple[str, dict[str, Any]]] = [(c, {}) for c in absent if c not in known]
        for chunk in _chunks(stubs, self.settings.batch_size):
            outcome = self.client.batch_upsert(COMPANIES.object_type, COMPANIES.key, chunk)
            self._company_ids.update(outcome.ids)
            self._remember(outcome.ids)
            for customer, message in outcome.errors.items():
                for (table, key), linked in batch.links.items():
                    if linked == customer:
                        owner = batch.owners.get((table, key), key)
                        failures.setdefault(owner, []).append(
                            f"HubSpot company for customer {customer}: {message}"
                        )
        return {c: self._company_ids[c] for c in customers if c in self._company_ids}


def _property_definition(kind: ObjectKind) -> dict[str, Any]:
    # POST /crm/v3/properties/{objectType}: a single-line text property with unique values.
    return {
        "name": kind.key,
        "label": kind.label,
        "type": "string",
        "fieldType": "text",
        "groupName": kind.group,
        "hasUniqueValue": True,
        "description": "Set by syncd: the id of the Invoiced object this record mirrors.",
    }


def _unsendable(mapped: MappedRecord) -> str | None:
    """Why a mapped row cannot become HubSpot properties (strings), if it cannot."""
    for table, rows in mapped.tables.items():
        for row in rows[:1]:
            for column, value in row.items():
                if isinstance(value, float):
                    return f"{table}.{column}: a float cannot be sent exactly; map it to a decimal"
                if isinstance(value, list | dict):
                    return f"{table}.{column}: a {type(value).__name__} is not a property value; use join"
    return None


def _fill_empty(props: Mapping[str, Any], current: Mapping[str, Any], fill: Sequence[str]) -> dict[str, Any]:
    """`props` less the `fill` properties that are empty here or already set in `current`."""
    return {
        k: v
        for k, v in props.items()
        if k not in fill or (v not in (None, "") and current.get(k) in (None, ""))
    }


def _datetime(name: str, value: Any, kind: ObjectKind) -> Any:
    """A bare `YYYY-MM-DD` for a datetime property as HubSpot documents it: midnight UTC, ISO 8601."""
    if name not in DATETIME_PROPERTIES.get(kind.table, ()):
        return value
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        value = value.isoformat()
    if isinstance(value, str) and _BARE_DATE.fullmatch(value):
        return f"{value}T00:00:00Z"
    return value


def _first_row(rows: Sequence[Mapping[str, Any]] | None) -> dict[str, Any] | None:
    return dict(rows[0]) if rows else None


def _key(row: Mapping[str, Any], kind: ObjectKind, record_id: str) -> str:
    value = row.get(kind.key)
    return record_id if value in (None, "") else str(value)


def _has_person(row: Mapping[str, Any]) -> bool:
    return any(row.get(name) not in (None, "") for name in ("email", "firstname", "lastname"))


def _chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
