# ruff: noqa
# mypy: ignore-errors
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
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Union

Resolve = Callable[[str, str], Mapping[str, Any] | None]
Reader = Callable[[Any, Resolve], Any]

# Types that are never a Mapping: the ABC check (`isinstance(x, Mapping)`) costs more than a
# whole lookup, so readers test `type(x) is dict` first, then this set, then the ABC.
_NOT_MAPPINGS = frozenset({type(None), bool, int, float, str, Decimal, list, tuple})


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
    # Built once from `steps`: `reader(data, resolve)` is what `read` does, minus a call.
    reader: Reader = field(init=False, repr=False, compare=False)
    # No reference and no list: reading costs a few dict lookups, not worth memoising.
    cheap: bool = field(init=False, repr=False, compare=False)
    # the key when the path is one plain key (`number`): readers inline `data.get(key)`
    key: str | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "reader", _reader(self.steps))
        object.__setattr__(self, "cheap", _cheap(self.steps))
        plain = len(self.steps) == 1 and self.steps[0].ref is None and not self.steps[0].many
        object.__setattr__(self, "key", self.steps[0].key if plain else None)

    def read(self, data: Any, resolve: Resolve) -> Any:
        """The value at this path (a list when the path iterates a list), None when missing."""
        return self.reader(data, resolve)


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


node_fields = _children  # the fields under a node (None for a scalar or free-form object)


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


def _cheap(steps: tuple[Step, ...]) -> bool:
    """No list, and no reference that needs a lookup (only a trailing `ref` or `ref.id`)."""
    last = len(steps) - 1
    return all(
        not s.many and (s.ref is None or i == last or (i + 1 == last and steps[last].key == "id"))
        for i, s in enumerate(steps)
    )


def _lists_after(steps: tuple[Step, ...]) -> tuple[bool, ...]:
    """For each position, whether a list step remains from there on (one more for the end)."""
    return (*(any(s.many for s in steps[i:]) for i in range(len(steps))), False)


def _reader(steps: tuple[Step, ...]) -> Reader:
    if not steps:
        return _identity
    if any(s.many for s in steps):
        return _many_reader(steps)
    if len(steps) == 1 and steps[0].ref is None:
        return _key_reader(steps[0].key)
    if len(steps) == 2 and steps[0].ref is not None and steps[1].ref is None and steps[1].key != "id":
        return _ref_key_reader(steps[0].key, steps[0].ref, steps[1].key)
    if all(s.ref is None for s in steps):
        return _keys_reader(tuple(s.key for s in steps))
    return _chain_reader(steps)


def _identity(value: Any, resolve: Resolve) -> Any:
    return value


def _key_reader(key: str) -> Reader:
    def read(value: Any, resolve: Resolve) -> Any:
        if type(value) is dict or (type(value) not in _NOT_MAPPINGS and isinstance(value, Mapping)):
            return value.get(key)
        return None

    return read


def _keys_reader(keys: tuple[str, ...]) -> Reader:
    """`metadata.x`: plain keys down, None where a value on the way is not a mapping."""

    def read(value: Any, resolve: Resolve) -> Any:
        for key in keys:
            if type(value) is not dict and (type(value) in _NOT_MAPPINGS or not isinstance(value, Mapping)):
                return None
            value = value.get(key)
        return value

    return read


def _ref_key_reader(field_name: str, stream: str, key: str) -> Reader:
    """`customer.name`: `_chain_reader` unrolled for the commonest reference path."""
    target_of = ref_target_reader(field_name, stream)

    def read(value: Any, resolve: Resolve) -> Any:
        target = target_of(value, resolve)
        return None if target is None else target.get(key)

    return read


def ref_target_reader(field_name: str, stream: str) -> Callable[[Any, Resolve], Mapping[str, Any] | None]:
    """The record a reference field names (expanded inline, else through `resolve`), or None."""

    def read(value: Any, resolve: Resolve) -> Mapping[str, Any] | None:
        if type(value) is not dict and (type(value) in _NOT_MAPPINGS or not isinstance(value, Mapping)):
            return None
        target = value.get(field_name)
        if type(target) is dict or (type(target) not in _NOT_MAPPINGS and isinstance(target, Mapping)):
            return target  # expanded by the API
        if target is None or isinstance(target, bool):
            return None
        target = resolve(stream, str(target))
        if type(target) is not dict and (type(target) in _NOT_MAPPINGS or not isinstance(target, Mapping)):
            return None
        return target

    return read


def _chain_reader(steps: tuple[Step, ...]) -> Reader:
    """A path without lists: walk it in a loop instead of recursing."""
    last = len(steps) - 1
    plan = tuple(
        (
            s.key,
            s.ref,
            i == last,
            i + 1 == last and steps[i + 1].key == "id",
        )
        for i, s in enumerate(steps)
    )

    def read(value: Any, resolve: Resolve) -> Any:
        for key, ref, is_last, then_id in plan:
            if type(value) is not dict and (type(value) in _NOT_MAPPINGS or not isinstance(value, Mapping)):
                return None
            value = value.get(key)
            if ref is not None:
                if type(value) is dict or (type(value) not in _NOT_MAPPINGS and isinstance(value, Mapping)):
                    if is_last:
                        return value.get("id")
                elif value is None or isinstance(value, bool):
                    return None
                elif is_last or then_id:
                    return value  # the id itself needs no lookup
                else:
                    value = resolve(ref, str(value))
        return value

    return read


def _many_reader(steps: tuple[Step, ...]) -> Reader:
    at = next(i for i, s in enumerate(steps) if s.many)
    if all(s.ref is None for s in steps[:at]) and not any(s.many for s in steps[at + 1 :]):
        rest = steps[at + 1 :]
        plain = rest[0].key if len(rest) == 1 and rest[0].ref is None else None
        return _one_list_reader(tuple(s.key for s in steps[: at + 1]), _reader(rest), plain)
    lists_after = _lists_after(steps)

    def read(value: Any, resolve: Resolve) -> Any:
        return _walk_from(value, steps, 0, resolve, lists_after)

    return read


def _one_list_reader(keys: tuple[str, ...], element_reader: Reader, element_key: str | None) -> Reader:
    """`a.b[].c.d`: plain keys down to one list, then a path without lists in each element."""
    head, last = keys[:-1], keys[-1]
    direct = element_reader is _identity
    inner = element_key

    def read(value: Any, resolve: Resolve) -> Any:
        for key in head:
            if type(value) is not dict and (type(value) in _NOT_MAPPINGS or not isinstance(value, Mapping)):
                return []
            value = value.get(key)
        if type(value) is not dict and (type(value) in _NOT_MAPPINGS or not isinstance(value, Mapping)):
            return []
        elements = value.get(last)
        if not isinstance(elements, (list, tuple)):
            return []
        if direct:
            return list(elements)
        if inner is not None:
            return [e.get(inner) if type(e) is dict else element_reader(e, resolve) for e in elements]
        return [element_reader(element, resolve) for element in elements]

    return read


def _walk_from(
    value: Any, steps: tuple[Step, ...], i: int, resolve: Resolve, lists_after: tuple[bool, ...]
) -> Any:
    if i == len(steps):
        return value
    if type(value) is not dict and (type(value) in _NOT_MAPPINGS or not isinstance(value, Mapping)):
        return [] if lists_after[i] else None
    step = steps[i]
    v = value.get(step.key)
    if step.ref is not None:
        if type(v) is dict or (type(v) not in _NOT_MAPPINGS and isinstance(v, Mapping)):
            if i + 1 == len(steps):
                return v.get("id")
        elif v is None or isinstance(v, bool):
            return None
        elif i + 1 == len(steps) or (i + 2 == len(steps) and steps[i + 1].key == "id"):
            return v  # the id itself needs no lookup
        else:
            v = resolve(step.ref, str(v))
    if step.many:
        if not isinstance(v, (list, tuple)):
            return []
        out: list[Any] = []
        nested = lists_after[i + 1]
        for element in v:
            got = _walk_from(element, steps, i + 1, resolve, lists_after)
            if nested:
                out.extend(got)
            else:
                out.append(got)
        return out
    return _walk_from(v, steps, i + 1, resolve, lists_after)
