"""One push run wired from the configuration: store, client and payment-providing connectors."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import structlog

from syncd.config import Settings
from syncd.invoiced import InvoicedClient
from syncd.plugin import Connector
from syncd.pushback.outbox import Outbox
from syncd.pushback.push import Pusher, PushReport
from syncd.store import Store
from syncd.store.lease import PUSH, WAIT_HINT, holding
from syncd.store.pacing import share_pacing

log = structlog.get_logger("syncd.pushback")


def payment_connectors(settings: Settings, store: Store) -> list[Connector]:
    """The enabled connectors whose class provides external payments."""
    from syncd import registry

    return [
        registry.build(spec, store, settings)
        for spec in registry.configured(settings)
        if spec.cls.provides_payments
    ]


def run_push(
    settings: Settings,
    *,
    store: Store | None = None,
    client: InvoicedClient | None = None,
    connectors: Sequence[Connector] | None = None,
    wait: bool = False,
    holder: str | None = None,
) -> PushReport:
    """Push every external payment once; recorded as a `push` run in the store.

    On its own store the run holds the store's push lease (LeaseHeld, or waits with `wait`);
    a caller that passes `store` (the daemon) holds it itself.
    """
    own_store, own_client = store is None, client is None
    if store is None:
        store = Store.open(settings.store_url())
    lease = contextlib.ExitStack()
    try:
        if own_store:
            ttl = settings.daemon.lock_ttl
            lease.enter_context(
                holding(store.engine, PUSH, ttl=ttl, role="syncd push", wait=wait, hint=WAIT_HINT)
            )
        if client is None:
            from syncd.engine import connect

            client = connect(settings)
        share_pacing(client, store.pace_engine)
        # The rate-limit budget bounds one run; a daemon's client lives across many (a
        # push-only daemon would otherwise spend it once and fail every later 429).
        client.pacer.reset_budget()
        if connectors is None:
            connectors = payment_connectors(settings, store)
        run_id = store.start_run("push", job="push", holder=holder)
        try:
            sources = [(c.context.name, c.external_payments()) for c in connectors]
            report = Pusher(settings.pushback, Outbox(store.engine), client).run(sources)
        except BaseException as exc:
            store.finish_run(run_id, "failed", {}, f"{type(exc).__name__}: {exc}")
            raise
        store.finish_run(run_id, "ok" if report.ok else "failed", report.counts, report.error)
        log.info("push.done", ok=report.ok, **report.counts)
        return report
    finally:
        if own_client and client is not None:
            client.close()
        lease.close()
        if own_store:
            store.close()
