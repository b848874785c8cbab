"""External payments pushed back to Invoiced as payment transactions, exactly once.

run_push(settings, store=..., client=..., connectors=...) -> PushReport   (the daemon)
run_push_command(settings, console) -> exit code                         (`syncd push`)

Its names are imported on first use: `syncd sync` reads the outbox's constants
(syncd.pushback.outbox) without loading the pusher and its Invoiced client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from syncd.lazy import exports

if TYPE_CHECKING:
    from syncd.pushback.command import run_push_command
    from syncd.pushback.push import OUTCOMES, Pusher, PushReport, idempotency_key, transaction_body
    from syncd.pushback.run import payment_connectors, run_push

_WHERE = {
    "run_push_command": "syncd.pushback.command",
    **{n: "syncd.pushback.push" for n in ("OUTCOMES", "PushReport", "Pusher", "idempotency_key", "transaction_body")},
    **{n: "syncd.pushback.run" for n in ("payment_connectors", "run_push")},
}
__all__ = [
    "OUTCOMES",
    "PushReport",
    "Pusher",
    "idempotency_key",
    "payment_connectors",
    "run_push",
    "run_push_command",
    "transaction_body",
]


__getattr__ = exports(__name__, _WHERE)
