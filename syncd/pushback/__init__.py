"""External payments pushed back to Invoiced as payment transactions, exactly once.

run_push(settings, store=..., client=..., connectors=...) -> PushReport   (the daemon)
run_push_command(settings, console) -> exit code                         (`syncd push`)
"""

from syncd.pushback.command import run_push_command
from syncd.pushback.push import OUTCOMES, Pusher, PushReport, idempotency_key, transaction_body
from syncd.pushback.run import payment_connectors, run_push

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
