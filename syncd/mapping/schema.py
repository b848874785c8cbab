"""What a path may name in each stream, and how a compiled path reads a record.

Field lists follow the Invoiced API reference (customer, invoice with line items, taxes and
discounts, transaction objects). `metadata.*` is free-form. A reference (`customer` on
invoices, `customer`/`invoice` on transactions) reads the expanded object when the API
expanded it, else the stored record through `resolve`, and reads as the id when it is the
last part of the path.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Union

Resolve = Callable[[str, str], Mapping[str, Any] | None]


class Free:
    """Any sub-key is allowed (metadata)."""


@dataclass(frozen=True)
class Ref:
    """A reference to a record of another stream, by id."""

    stream: str


@dataclass(frozen=True)
class ListOf:
    """A list of objects."""

    fields: Schema


Node = Union[None, "Schema", ListOf, Ref, Free]
Schema = dict[str, Node]

FREE = Free()


def _scalars(names: str) -> Schema:
    return dict.fromkeys(names.split())


_PAYMENT_SOURCE = _scalars("id object brand last4 exp_month exp_year funding bank_name routing_number")
_ADDRESS = _scalars("name attention_to address1 address2 city state postal_code country")
_ADJUSTMENT: Schema = {
    **_scalars("id object amount coupon expires updated_at"),
    "tax_rate": FREE,
    "metadata": FREE,
}

CUSTOMER: Schema = {
    **_scalars(
        "id object number name email type autopay autopay_delay_days payment_terms attention_to"
        " address1 address2 city state postal_code country language currency tax_id phone notes"
        " taxable credit_hold credit_limit chase chasing_cadence next_chase_step owner"
        " parent_customer statement_pdf_url sign_up_page sign_up_url avalara_entity_use_code"
        " avalara_exemption_number ach_gateway cc_gateway created_at updated_at"
    ),
    "payment_source": _PAYMENT_SOURCE,
    "taxes": ListOf(_ADJUSTMENT),
    "metadata": FREE,
}

LINE_ITEM: Schema = {
    **_scalars(
        "id object catalog_item type name description quantity unit_cost amount discountable taxable"
        " updated_at"
    ),
    "discounts": ListOf(_ADJUSTMENT),
    "taxes": ListOf(_ADJUSTMENT),
    "metadata": FREE,
}

INVOICE: Schema = {
    **_scalars(
        "id object name currency draft closed paid status autopay attempt_count next_payment_attempt"
        " subscription number date due_date payment_terms purchase_order notes subtotal total balance"
        " url payment_url pdf_url created_at updated_at payment_plan amount_paid chase"
    ),
    "customer": Ref("customers"),
    "ship_to": _ADDRESS,
    "items": ListOf(LINE_ITEM),
    "discounts": ListOf(_ADJUSTMENT),
    "taxes": ListOf(_ADJUSTMENT),
    "metadata": FREE,
}

TRANSACTION: Schema = {
    **_scalars(
        "id object credit_note date type method status gateway gateway_id currency amount notes"
        " parent_transaction pdf_url created_at updated_at"
    ),
    "customer": Ref("customers"),
    "invoice": Ref("invoices"),
    "payment_source": _PAYMENT_SOURCE,
    "metadata": FREE,
}

SCHEMAS: dict[str, Schema] = {"customers": CUSTOMER, "invoices": INVOICE, "transactions": TRANSACTION}
STREAM_NAMES = tuple(SCHEMAS)

_SEGMENT = re.compile(r"^([^.\[\]\s{}]+)(\[\])?$")


@dataclass(frozen=True)
class Step:
    """One part of a compiled path."""

    key: str
    many: bool = False  # iterate the list here
    ref: str | None = None  # a reference to this stream


@dataclass(frozen=True)
class CompiledPath:
    """A path checked against a stream schema, ready to read records."""

    text: str
    steps: tuple[Step, ...]
    is_list: bool
    expands: frozenset[str]
    relative: bool = False  # reads the current row (a line item), not the record

    def read(self, data: Any, resolve: Resolve) -> Any:
        """The value at this path (a list when the path iterates a list), None when missing."""
        return _walk(data, self.steps, 0, resolve)


class PathError(ValueError):
    """A path that the stream schema does not allow; `suggestion` is the nearest valid one."""

    def __init__(self, message: str, suggestion: str | None = None) -> None:
        super().__init__(message)
        self.suggestion = suggestion


def _children(node: Node) -> Schema | None:
    if isinstance(node, ListOf):
        return node.fields
    if isinstance(node, Ref):
        return SCHEMAS[node.stream]
    if isinstance(node, dict):
        return node
    return None


def _all_paths(schema: Schema, prefix: str = "", depth: int = 0) -> list[str]:
    out = []
    for name, node in schema.items():
        here = prefix + name + ("[]" if isinstance(node, ListOf) else "")
        out.append(here)
        children = _children(node)
        if children is not None and depth < 2 and not isinstance(node, Ref):
            out.extend(_all_paths(children, here + ".", depth + 1))
        elif isinstance(node, Ref) and depth == 0:
            out.extend(_all_paths(SCHEMAS[node.stream], here + ".", depth + 1))
    return out


def valid_paths(stream: str) -> list[str]:
    """Every path `check` accepts for a stream (metadata keys aside)."""
    return _all_paths(SCHEMAS[stream])


def compile_path(stream: str, text: str, row: str | None = None) -> CompiledPath:
    """Check `text` against the stream's schema and compile it; raise PathError otherwise.

    With `row` (a table's `rows` path such as `items`), `items[].x` reads the current row.
    """
    if not isinstance(text, str) or not text.strip():
        raise PathError("a path must be non-empty text such as 'number' or 'customer.name'")
    node: Node = SCHEMAS[stream]
    steps: list[Step] = []
    expands: set[str] = set()
    parts = text.split(".")
    done: list[str] = []
    for index, part in enumerate(parts):
        m = _SEGMENT.match(part)
        if node is FREE:
            if not m or m.group(2):
                raise PathError(f"invalid metadata key {part!r} in path {text!r}")
            steps.append(Step(part))
            done.append(part)
            continue
        children = _children(node)
        if children is None:
            raise PathError(
                f"{'.'.join(done)!r} has no fields: {text!r} is not a path of {stream}",
                ".".join(done) or None,
            )
        if not m:
            raise PathError(f"invalid path {text!r}: part {part!r} (write names separated by dots)")
        name, many = m.group(1), bool(m.group(2))
        if name not in children:
            prefix = ".".join(done) + "." if done else ""
            options = [prefix + c + ("[]" if isinstance(children[c], ListOf) else "") for c in children]
            wanted = prefix + part
            near = difflib.get_close_matches(wanted, options, n=1, cutoff=0.6)
            raise PathError(f"unknown path {text!r} for {stream}", near[0] if near else None)
        child = children[name]
        if isinstance(child, ListOf) != many:
            if many:
                raise PathError(f"{name!r} is not a list: write {name!r} without []", name)
            # the list itself (e.g. `taxes`) is fine as a value; stepping into it needs []
            if index < len(parts) - 1:
                fixed = ".".join([*done, name + "[]", *parts[index + 1 :]])
                raise PathError(f"{name!r} is a list: write {name + '[]'!r} to read its elements", fixed)
        ref = child.stream if isinstance(child, Ref) else None
        if ref is not None and not steps and index < len(parts) - 1 and parts[index + 1 :] != ["id"]:
            expands.add(name)
        steps.append(Step(name, many, ref))
        done.append(part)
        node = child
    is_list = any(s.many for s in steps)
    if row is not None:
        row_steps = compile_rows(stream, row).steps
        if tuple(steps[: len(row_steps)]) == row_steps and steps[len(row_steps) - 1].many:
            # relative to the current row: the row itself is the root
            rest = tuple(steps[len(row_steps) :])
            return CompiledPath(text, rest, any(s.many for s in rest), frozenset(expands), relative=True)
    return CompiledPath(text, tuple(steps), is_list, frozenset(expands))


def compile_rows(stream: str, text: str) -> CompiledPath:
    """A table's `rows` path: a list of objects (`items`, `taxes`, `items[].taxes`)."""
    try:
        path = compile_path(stream, text if text.endswith("[]") else text + "[]")
    except PathError as exc:
        near = exc.suggestion.removesuffix("[]") if exc.suggestion else None
        raise PathError(str(exc).replace("[]'", "'"), near) from None
    if not path.steps[-1].many:
        raise PathError(f"rows must name a list such as 'items', not {text!r}", "items")
    return path


def _walk(value: Any, steps: tuple[Step, ...], i: int, resolve: Resolve) -> Any:
    if i == len(steps):
        return value
    if not isinstance(value, Mapping):
        return [] if any(s.many for s in steps[i:]) else None
    step = steps[i]
    v = value.get(step.key)
    if step.ref is not None:
        if isinstance(v, Mapping):
            if i + 1 == len(steps):
                return v.get("id")
        elif v is None or isinstance(v, bool):
            return None
        elif i + 1 == len(steps) or (i + 2 == len(steps) and steps[i + 1].key == "id"):
            return v  # the id itself needs no lookup
        else:
            v = resolve(step.ref, str(v))
    if step.many:
        if not isinstance(v, list | tuple):
            return []
        out: list[Any] = []
        for element in v:
            got = _walk(element, steps, i + 1, resolve)
            if any(s.many for s in steps[i + 1 :]):
                out.extend(got)
            else:
                out.append(got)
        return out
    return _walk(v, steps, i + 1, resolve)
