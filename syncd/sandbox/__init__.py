"""`syncd sandbox`: a local Invoiced-compatible API for tests, demos and benchmarks.

    sb = Sandbox(SandboxConfig(seed=7, invoices=500))
    url = sb.start()            # http://127.0.0.1:PORT, served from background threads
    sb.data.update("invoices", 3, {"notes": "moved"})
    sb.knobs.p429 = 0.2         # faults can be turned on and off while it serves
    sb.stop()

Several accounts on one port, each found by its API key, with its own data (seeded with
seed + i), fault knobs, rate limit, idempotency memory and stats:

    sb = Sandbox(SandboxConfig(seed=7, accounts=20))
    for name, account in sb.accounts.items():   # acct01 ... acct20
        account.api_key, account.data, account.knobs, account.stats

Where the API reference is silent, the sandbox decides as follows (and tests pin it):

- seeded records have no events (their history predates the sandbox); every change made
  afterwards, through HTTP, `sb.data` or the background editor, emits one;
- deleting an invoice deletes its transactions, deleting a customer deletes its invoices and
  transactions, each with its own `.deleted` event, so no money ever points at nothing;
- payments above the balance are accepted (the balance goes negative, a credit), payments on
  draft, voided or closed invoices are refused with a 400 naming `invoice`;
- unknown query parameters are ignored, as the API does; unknown body fields are a 400;
- PATCH replaces `items`, `discounts`, `taxes` and `metadata` as a whole.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from syncd.lazy import exports

if TYPE_CHECKING:
    from syncd.sandbox.config import Knobs, SandboxConfig, Stats
    from syncd.sandbox.data import ListQuery, SandboxData
    from syncd.sandbox.model import ApiProblem
    from syncd.sandbox.server import Account, Sandbox

# Imported on first use: `syncd --help` lists the sandbox command (syncd.sandbox.command)
# without loading the server.
_WHERE = {
    **{n: "syncd.sandbox.config" for n in ("Knobs", "SandboxConfig", "Stats")},
    **{n: "syncd.sandbox.data" for n in ("ListQuery", "SandboxData")},
    "ApiProblem": "syncd.sandbox.model",
    **{n: "syncd.sandbox.server" for n in ("Account", "Sandbox")},
}

__all__ = [
    "Account",
    "ApiProblem",
    "Knobs",
    "ListQuery",
    "Sandbox",
    "SandboxConfig",
    "SandboxData",
    "Stats",
]


__getattr__ = exports(__name__, _WHERE)
