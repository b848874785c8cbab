"""Realistic seeded data, deterministic by seed.

Customers in several currencies with `region`/`account_rep` metadata; invoices with line
items, discounts and taxes that are paid, partly paid, overdue, open, draft or voided;
payments, refunds and adjustments whose amounts add up (balance = total - payments).
Timestamps lie before a fixed anchor so the same seed always gives the same records,
and a fifth of the records share a few "bulk edit" seconds, as real accounts do.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from syncd.sandbox.data import customer_template, invoice_template, transaction_template
from syncd.sandbox.model import compute_invoice, money, paid_effect

if TYPE_CHECKING:
    from syncd.sandbox.data import SandboxData

ANCHOR = 1_748_736_000  # 2025-06-01T00:00:00Z: every seeded timestamp is before it
SPAN = 3 * 365 * 86400
DAY = 86400
# Stored objects are never changed in place (every write stores a new dict), so seeded records
# can share these empty containers: it saves a good part of the memory of 200,000 invoices.
_EMPTY_LIST: list[Any] = []
_EMPTY_DICT: dict[str, Any] = {}
_QUANTITIES = tuple(Decimal(q) for q in (1, 1, 2, 3, 5, 10))
_QUANTITY_HALF = Decimal("1.5")

_FIRST = (
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Stark",
    "Wayne",
    "Hooli",
    "Vandelay",
    "Soylent",
    "Tyrell",
    "Cyberdyne",
    "Wonka",
    "Gringotts",
    "Dunder",
    "Pied Piper",
    "Oceanic",
    "Monarch",
    "Nakatomi",
    "Aperture",
    "Massive",
)
_SECOND = (
    "Paper",
    "Logistics",
    "Consulting",
    "Foods",
    "Labs",
    "Industries",
    "Media",
    "Dynamics",
    "Energy",
    "Capital",
    "Health",
    "Robotics",
    "Textiles",
    "Analytics",
    "Studios",
)
_SUFFIX = ("Inc", "LLC", "Ltd", "GmbH", "SA", "KK", "& Co", "plc")
_REPS = ("Jan", "Pam", "Jim", "Dwight", "Angela", "Oscar", "Kevin", "Stanley")
_REGIONS = ("amer", "emea", "apac", "latam")
_CURRENCIES = (("usd", 60), ("eur", 20), ("gbp", 13), ("jpy", 7))
_COUNTRY = {"usd": ("US", "CA"), "eur": ("DE", "FR", "NL", "ES"), "gbp": ("GB",), "jpy": ("JP",)}
_CATALOG = (
    ("Copy Paper, Case", "45.00"),
    ("Delivery", "10.00"),
    ("Consulting hour", "150.00"),
    ("Support plan", "299.00"),
    ("Toner cartridge", "89.99"),
    ("Onboarding", "1200.00"),
    ("License seat", "49.50"),
    ("Storage, per TB", "23.10"),
)
_TERMS = ("NET 15", "NET 30", "NET 30", "NET 45", None)
_METHODS = ("check", "ach", "wire", "credit_card", "cash", "other")


def _weighted(rng: random.Random, choices: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([c for c, _ in choices], weights=[w for _, w in choices])[0]


def _times(rng: random.Random, n: int, start: int, end: int) -> list[int]:
    return sorted(rng.randrange(start, end) for _ in range(n))


def seed_data(data: SandboxData, seed: int, customers: int, invoices: int, transactions: int) -> None:
    """Fill `data` with `customers`, `invoices` and `transactions` records (no events)."""
    _Seeder(seed, customers + invoices + transactions).fill(data, customers, invoices, transactions)


class _Seeder:
    def __init__(self, seed: int, size: int) -> None:
        self.rng = random.Random(seed)
        self.bulk_seconds = sorted(
            self.rng.randrange(ANCHOR - 30 * DAY, ANCHOR) for _ in range(max(1, size // 500))
        )
        self.sub_id = 1
        self.flags: dict[int, dict[str, bool]] = {}
        self.shared_flags: dict[tuple[bool, bool, bool], dict[str, bool]] = {}
        # Shared Decimal instances for catalog prices and line amounts keep 200k invoices small.
        self.prices: dict[tuple[str, str, Decimal], tuple[Decimal, Decimal]] = {}

    def later(self, ts: int) -> int:
        """updated_at for a record created at ts: often untouched, sometimes edited, a fifth in a bulk edit."""
        roll = self.rng.random()
        if roll < 0.2:
            return max(ts, self.rng.choice(self.bulk_seconds))
        if roll < 0.5:
            return min(ANCHOR - 1, ts + self.rng.randrange(1, 90 * DAY))
        return ts

    def fill(self, data: SandboxData, customers: int, invoices: int, transactions: int) -> None:
        custs = self.customers(max(customers, 1 if invoices or transactions else 0))
        invs = self.invoices(invoices, custs)
        txs = _transactions(self.rng, transactions, custs, invs, self.flags, self.later)
        paid: dict[int, Decimal] = {}
        last_tx: dict[int, int] = {}
        for t in txs:
            if t["invoice"] is not None:
                paid[t["invoice"]] = paid.get(t["invoice"], Decimal(0)) + paid_effect(t)
                last_tx[t["invoice"]] = max(last_tx.get(t["invoice"], 0), t["created_at"])
        for inv in invs:
            compute_invoice(inv, paid.get(inv["id"], Decimal(0)), False, self.flags[inv["id"]], ANCHOR)
            if inv["id"] in last_tx:
                inv["updated_at"] = max(inv["updated_at"], last_tx[inv["id"]])
        with data.lock:
            data.tables["customers"].load(custs)
            data.tables["invoices"].load(invs)
            data.tables["transactions"].load(txs)
            data.flags.update({k: v for k, v in self.flags.items() if any(v.values())})
            data.set_sub_id(self.sub_id)
            for c in custs:
                data.numbers["customers"][c["number"]] = c["id"]
            for inv in invs:
                data.numbers["invoices"][inv["number"]] = inv["id"]
                data.customer_refs[inv["customer"]] += 1
            for t in txs:
                data.customer_refs[t["customer"]] += 1
                if t["invoice"] is not None:
                    data.tx_by_invoice.setdefault(t["invoice"], set()).add(t["id"])

    def customers(self, n: int) -> list[dict[str, Any]]:
        rng = self.rng
        custs: list[dict[str, Any]] = []
        for i, created in enumerate(_times(rng, n, ANCHOR - SPAN, ANCHOR - 60 * DAY), 1):
            currency = _weighted(rng, _CURRENCIES)
            c = customer_template(i, created)
            name = f"{rng.choice(_FIRST)} {rng.choice(_SECOND)} {rng.choice(_SUFFIX)}"
            c.update(
                name=name,
                number=f"CUST-{i:05d}",
                email=f"billing{i}@{name.split(maxsplit=1)[0].lower()}.example",
                currency=currency,
                country=rng.choice(_COUNTRY[currency]),
                payment_terms=rng.choice(_TERMS),
                autopay=rng.random() < 0.15,
                updated_at=self.later(created),
            )
            meta: dict[str, str] = {}
            if rng.random() < 0.9:
                meta["region"] = rng.choice(_REGIONS)
            if rng.random() < 0.7:
                meta["account_rep"] = rng.choice(_REPS)
            if rng.random() < 0.2:
                meta["icp_number"] = str(rng.randrange(10**9, 10**10))
            c["metadata"] = meta
            custs.append(c)
        return custs

    def _item(self, currency: str) -> dict[str, Any]:
        name, price = self.rng.choice(_CATALOG)
        quantity = self.rng.choice(_QUANTITIES) if self.rng.random() < 0.9 else _QUANTITY_HALF
        key = (name, currency, quantity)
        if key not in self.prices:
            unit = money(Decimal(price) * (100 if currency == "jpy" else 1), currency)
            self.prices[key] = (unit, money(quantity * unit, currency))
        unit, amount = self.prices[key]
        self.sub_id += 1
        return {
            "id": self.sub_id - 1,
            "object": "line_item",
            "catalog_item": None,
            "type": "product",
            "name": name,
            "description": None,
            "quantity": quantity,
            "unit_cost": unit,
            "amount": amount,
            "discountable": True,
            "discounts": _EMPTY_LIST,
            "taxable": True,
            "taxes": _EMPTY_LIST,
            "metadata": _EMPTY_DICT,
        }

    def invoices(self, n: int, custs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        rng = self.rng
        cust_created = [c["created_at"] for c in custs]
        invs: list[dict[str, Any]] = []
        for i, created in enumerate(_times(rng, n, ANCHOR - SPAN + 7 * DAY, ANCHOR - DAY), 1):
            # Only customers that existed when the invoice was written.
            cust = custs[rng.randrange(max(1, _bisect(cust_created, created)))]
            currency = cust["currency"]
            inv = invoice_template(i, cust["id"], currency, created)
            items = [self._item(currency) for _ in range(rng.choice((1, 1, 2, 2, 3)))]
            subtotal = sum((it["amount"] for it in items), Decimal(0))
            if rng.random() < 0.15:
                inv["discounts"] = [
                    {
                        "id": self.sub_id,
                        "object": "discount",
                        "amount": money(subtotal * Decimal("0.05"), currency),
                        "coupon": None,
                        "expires": None,
                    }
                ]
                self.sub_id += 1
            if rng.random() < 0.4:
                inv["taxes"] = [
                    {
                        "id": self.sub_id,
                        "object": "tax",
                        "amount": money(subtotal * Decimal("0.0725"), currency),
                        "tax_rate": None,
                    }
                ]
                self.sub_id += 1
            terms = cust["payment_terms"] or "NET 30"
            roll = rng.random()
            day = created - created % DAY
            inv.update(
                items=items,
                number=f"INV-{i:06d}",
                date=day,
                payment_terms=terms,
                due_date=day + int(terms.split()[1]) * DAY,
                draft=roll < 0.05,
                autopay=cust["autopay"],
                updated_at=self.later(created),
            )
            flags = (0.05 <= roll < 0.08, roll >= 0.3, roll >= 0.7)
            if flags not in self.shared_flags:  # a handful of combinations, shared (never changed in place)
                self.shared_flags[flags] = {"voided": flags[0], "sent": flags[1], "viewed": flags[2]}
            self.flags[i] = self.shared_flags[flags]
            if rng.random() < 0.3:
                inv["metadata"] = (
                    {"project": f"P-{rng.randrange(1, 60):03d}"}
                    if rng.random() < 0.5
                    else {"po_ref": f"PO{rng.randrange(10**5, 10**6)}"}
                )
            invs.append(inv)
        return invs


def _bisect(values: list[int], x: int) -> int:
    lo, hi = 0, len(values)
    while lo < hi:
        mid = (lo + hi) // 2
        if values[mid] <= x:
            lo = mid + 1
        else:
            hi = mid
    return lo


def _transactions(
    rng: random.Random,
    budget: int,
    custs: list[dict[str, Any]],
    invs: list[dict[str, Any]],
    flags: dict[int, dict[str, bool]],
    later: Callable[[int], int],
) -> list[dict[str, Any]]:
    """Payments (full, partial, split), refunds of some payments, and customer adjustments."""
    plans: list[dict[str, Any]] = []
    payable = [inv for inv in invs if not inv["draft"] and not flags[inv["id"]]["voided"]]
    rng.shuffle(payable)
    n_adjust = budget // 20 if custs else 0
    n_refund = budget // 20
    pay_budget = budget - n_adjust - n_refund
    payments: list[dict[str, Any]] = []
    for inv in payable:
        if len(plans) >= pay_budget:
            break
        currency = inv["currency"]
        total = _total(inv)
        if total <= 0:
            continue
        roll = rng.random()
        if roll < 0.7 or (roll >= 0.85 and pay_budget - len(plans) < 2):
            parts = [total]
        elif roll < 0.85:
            parts = [money(total * Decimal(rng.randrange(30, 71)) / 100, currency)]
        else:
            first = money(total * Decimal(rng.randrange(20, 81)) / 100, currency)
            parts = [first, total - first]
        when = inv["date"] + rng.randrange(0, 40 * DAY)
        for amount in parts:
            when = min(ANCHOR - 2 * DAY, when + rng.randrange(0, 10 * DAY))
            plan = {
                "customer": inv["customer"],
                "invoice": inv["id"],
                "type": "payment",
                "amount": amount,
                "currency": currency,
                "method": rng.choice(_METHODS),
                "date": when,
                "gateway_id": str(rng.randrange(1000, 99999)) if rng.random() < 0.5 else None,
            }
            plans.append(plan)
            payments.append(plan)
    for pay in rng.sample(payments, min(n_refund, len(payments))):
        amount = money(pay["amount"] * Decimal(rng.randrange(10, 51)) / 100, pay["currency"])
        plans.append(
            {
                **pay,
                "type": "refund",
                "amount": amount,
                "date": pay["date"] + rng.randrange(DAY, 20 * DAY),
                "parent": pay,
                "gateway_id": None,
            }
        )
    for _ in range(n_adjust if custs else 0):
        cust = rng.choice(custs)
        currency = cust["currency"]
        amount = money(Decimal(rng.randrange(-500, 200)) * (100 if currency == "jpy" else 1), currency)
        plans.append(
            {
                "customer": cust["id"],
                "invoice": None,
                "type": "adjustment",
                "amount": amount or money(-10, currency),
                "currency": currency,
                "method": "balance",
                "date": rng.randrange(cust["created_at"], ANCHOR - DAY),
                "gateway_id": None,
            }
        )
    plans.sort(key=lambda p: (p["date"], p["type"] == "refund"))
    out: list[dict[str, Any]] = []
    for i, plan in enumerate(plans, 1):
        created = min(ANCHOR - DAY, plan["date"] + rng.randrange(0, 6 * 3600))
        t = transaction_template(i, plan["customer"], plan["currency"], created)
        t.update(
            invoice=plan["invoice"],
            type=plan["type"],
            method=plan["method"],
            amount=plan["amount"],
            date=plan["date"] - plan["date"] % DAY,
            gateway_id=plan["gateway_id"],
        )
        plan["id"] = i
        if "parent" in plan:
            t["parent_transaction"] = plan["parent"].get("id")
        if rng.random() < 0.1:
            t["metadata"] = {"batch": f"B{rng.randrange(1, 40)}"}
        t["updated_at"] = later(created)
        out.append(t)
    return out


def _total(inv: dict[str, Any]) -> Decimal:
    currency = inv["currency"]
    subtotal = sum((money(it["quantity"] * it["unit_cost"], currency) for it in inv["items"]), Decimal(0))
    return money(
        subtotal
        - sum((d["amount"] for d in inv["discounts"]), Decimal(0))
        + sum((t["amount"] for t in inv["taxes"]), Decimal(0)),
        currency,
    )
