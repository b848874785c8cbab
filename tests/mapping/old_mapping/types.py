# ruff: noqa
# mypy: ignore-errors
"""Field types of the Invoiced objects, and the type check of a column's transform chain.

A chain that cannot work on the type its source always has (`money` on the invoice number,
`date` on a name, `sum` on a single value) would refuse every record at run time; `check`
reports it instead, at the step. Types follow the API reference (`docs/mappings.md`, the
objects in `shared/reference/api-examples`): money fields are decimals, dates unix
timestamps, ids integers. Metadata and free-form objects have no known type and pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tests.mapping.old_mapping.schema import SCHEMAS, CompiledPath, Node, Ref, node_fields

TEXT, NUMBER, INTEGER, TIMESTAMP, BOOLEAN = "text", "decimal number", "integer", "timestamp", "boolean"

# By field name: the Invoiced objects use each name with one type.
_BY_NAME: dict[str, str] = {
    **dict.fromkeys(
        ("date", "due_date", "created_at", "updated_at", "next_payment_attempt", "expires"), TIMESTAMP
    ),
    **dict.fromkeys(
        ("amount", "total", "subtotal", "balance", "amount_paid", "credit_limit", "quantity", "unit_cost"),
        NUMBER,
    ),
    **dict.fromkeys(
        (
            "id",
            "attempt_count",
            "autopay_delay_days",
            "chasing_cadence",
            "next_chase_step",
            "exp_month",
            "exp_year",
            "subscription",
            "payment_plan",
            "parent_customer",
            "credit_note",
            "parent_transaction",
        ),
        INTEGER,
    ),
    **dict.fromkeys(
        ("autopay", "taxable", "credit_hold", "chase", "draft", "closed", "paid", "discountable"), BOOLEAN
    ),
}
# Scalars whose type varies or is not documented: not checked.
_UNKNOWN = frozenset({"owner", "sign_up_page", "ach_gateway", "cc_gateway", "coupon"})


@dataclass(frozen=True)
class Kind:
    """What a value is before a step: a type (None: unknown) and whether it is a list."""

    type: str | None
    many: bool = False

    def describe(self) -> str:
        if self.type is None:
            return "a list" if self.many else "a value"
        if self.many:
            return f"a list of {self.type} values"
        return "text" if self.type == TEXT else f"{_article(self.type)} {self.type}"


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def path_kind(stream: str, path: CompiledPath, row: CompiledPath | None = None) -> Kind:
    """The kind of value a compiled path reads (`row`: the table's rows path, for row paths)."""
    steps = (*row.steps, *path.steps) if path.relative and row is not None else path.steps
    node: Node = SCHEMAS[stream]
    for step in steps:
        fields = node_fields(node)
        if fields is None or step.key not in fields:
            return Kind(None, path.is_list)  # metadata and other free-form objects
        node = fields[step.key]
    if isinstance(node, Ref):
        return Kind(INTEGER, path.is_list)  # the id
    if node is not None or not steps:
        return Kind(None, path.is_list)  # an object or a list of them
    key = steps[-1].key
    return Kind(None if key in _UNKNOWN else _BY_NAME.get(key, TEXT), path.is_list)


def constant_kind(value: Any) -> Kind:
    if isinstance(value, bool):
        return Kind(BOOLEAN)
    if isinstance(value, int):
        return Kind(INTEGER)
    if isinstance(value, Decimal):
        return Kind(NUMBER)
    try:
        Decimal(str(value).strip())
    except ArithmeticError:
        return Kind(TEXT)
    return Kind(NUMBER)  # numeric text: money and decimal read it


_NUMERIC = (NUMBER, INTEGER, None)


def check_chain(source: str, kind: Kind, steps: Sequence[tuple[str, Any]]) -> tuple[int, str] | None:
    """The first step (index, reason) that cannot work on what reaches it, or None.

    `steps` are (name, argument) pairs; `source` names the column's source in messages.
    """
    for index, (name, arg) in enumerate(steps):
        what = f"{source} is {kind.describe()}"
        if name in ("date", "datetime"):
            if kind.many or kind.type not in (TIMESTAMP, INTEGER, None):
                return index, f"{name} needs a unix timestamp, but {what}: it would fail on every record"
            kind = Kind(TEXT)
        elif name in ("money", "decimal"):
            if kind.many or kind.type not in (*_NUMERIC, TIMESTAMP):
                return index, f"{name} needs a number, but {what}: it would fail on every record"
            kind = Kind(NUMBER)
        elif name == "sum":
            if not kind.many:
                return index, f"sum adds up the elements of a list, but {what}; drop sum (or use money)"
            if kind.type not in _NUMERIC:
                return index, f"sum needs numbers, but {what}: it would fail on every record"
            kind = Kind(NUMBER)
        elif name == "join":
            kind = Kind(TEXT)
        elif name == "map":
            targets = list(arg.values()) if isinstance(arg, dict) else []
            kinds = {constant_kind(v).type for v in targets}
            kind = Kind(kinds.pop() if len(kinds) == 1 else None)
        elif name == "default":
            if constant_kind(arg).type != kind.type:
                kind = Kind(None, kind.many)
        else:  # text, upper, lower, strip, truncate
            kind = Kind(TEXT)
    return None
