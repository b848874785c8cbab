"""What the ledger connector refuses in every record, checked on a mapping's constants.

`syncd mappings check` asks `LedgerConnector.check_constant` about each constant a mapping
can output (accounts in `value`s, value tables, fallbacks, defaults, a template's literal
start), so that `income:sales` is reported at its file:line:column instead of refusing
1,906 records at run time.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from connectors.ledger.journal import PAYMENT_LIKE, RECEIVABLE_UP, ROOTS
from connectors.ledger.render import beancount_accounts

ACCOUNT_COLUMNS = frozenset(
    {
        ("customers", "ar_account"),
        ("customers", "credit_account"),
        ("invoices", "ar_account"),
        ("invoice_lines", "account"),
        ("invoice_taxes", "account"),
        ("invoice_discounts", "account"),
        ("transactions", "account"),
        ("transactions", "ar_account"),
        ("transactions", "credit_account"),
    }
)
AMOUNT_COLUMNS = frozenset(
    {
        ("invoices", "total"),
        ("invoice_lines", "amount"),
        ("invoice_taxes", "amount"),
        ("invoice_discounts", "amount"),
        ("transactions", "amount"),
    }
)
_BEANCOUNT_PART = re.compile(r"[A-Z0-9][A-Za-z0-9 -]*")


def account_problem(name: str, dialect: str) -> str | None:
    """Why `name` is not an account the journal can hold as written."""
    if not name.strip():
        return None  # empty: the connector uses [connectors.ledger.accounts]
    parts = name.split(":")
    root = parts[0]
    if root not in ROOTS:
        near = next((r for r in ROOTS if r.lower() == root.strip().lower()), None)
        fix = f" (did you mean {':'.join([near, *parts[1:]])!r}?)" if near else ""
        return f"account {name!r} must start with one of {', '.join(ROOTS)}{fix}"
    if any(not any(ch.isalnum() for ch in p) for p in parts[1:]):
        return f"account {name!r} has an empty part ('::' or ':' at an end): it would be written as 'Unknown'"
    if ";" in name:
        return f"account {name!r} holds ';', which starts a comment in a journal"
    if dialect != "beancount" and ("  " in name or "\t" in name):
        return f"account {name!r} holds two spaces or a tab, which end an account name in {dialect}"
    if dialect == "beancount":
        for part in parts[1:]:
            if not _BEANCOUNT_PART.fullmatch(part):
                fixed = beancount_accounts([name])[name]
                return (
                    f"Beancount account part {part!r} must start with a capital letter or a digit and hold "
                    f"only letters, digits, '-' and spaces: {name!r} would be written as {fixed!r}"
                )
    return None


def constant_problem(
    dialect: str, table: str, column: str, value: Any, *, prefix: bool = False
) -> str | None:
    """Why a constant output refuses every record of the ledger connector, else None.

    `prefix`: `value` is only the complete parts a template starts with.
    """
    if (table, column) in ACCOUNT_COLUMNS:
        return account_problem(str(value), dialect) if value is not None else None
    if prefix:
        return None
    if (table, column) in AMOUNT_COLUMNS and value not in (None, ""):
        try:
            ok = not isinstance(value, bool) and Decimal(str(value).strip().replace(",", "")).is_finite()
        except InvalidOperation:
            ok = False
        return None if ok else f"{value!r} is not an amount"
    if (table, column) == ("transactions", "type") and value not in (None, ""):
        kinds = sorted(PAYMENT_LIKE | RECEIVABLE_UP)
        if str(value).strip().lower() not in kinds:
            return f"transaction type {value!r} is not one of {', '.join(kinds)}"
    if column == "currency" and value not in (None, ""):
        text = str(value).strip()
        if not text.isalpha() or not 2 <= len(text) <= 10:
            return f"{value!r} is not a currency code"
    return None
