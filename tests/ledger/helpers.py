"""Helpers for ledger tests: records mapped by hand as mappings/ledger.toml would, and the real tools."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from connectors.ledger import LedgerConnector, LedgerSettings
from syncd.plugin import ConnectorContext, MappedRecord, Record
from syncd.store import Store

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "tests" / "fixtures" / "api-examples"  # copies of the API reference's examples
BEAN_CHECK = ROOT / ".venv" / "bin" / "bean-check"
REVENUE = {"product": "Income:Sales:Products", "service": "Income:Sales:Services"}
CASH = {
    "check": "Assets:Bank:Checking",
    "credit_card": "Assets:Clearing:Card Payments",
    "balance": "Income:Adjustments",
}


def example(rel: str) -> dict[str, Any]:
    """An api-examples JSON object, money as Decimal."""
    return json.loads((EXAMPLES / rel).read_text(), parse_float=Decimal)  # type: ignore[no-any-return]


def _day(ts: int) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).date().isoformat()


def ar_account(customer: Any, customers: Mapping[str, str], root: str = "Assets:Accounts Receivable") -> str:
    """The account the default mapping gives a customer: name and number (names repeat)."""
    return f"{root}:{customers.get(str(customer), '')} (CUST-{customer})"


def map_record(
    stream: str, data: Mapping[str, Any], customers: Mapping[str, str]
) -> dict[str, list[dict[str, Any]]]:
    """What mappings/ledger.toml makes of a record (drafts / unsettled transactions skipped)."""
    name = customers.get(str(data.get("customer")), "")
    ar = ar_account(data.get("customer"), customers)
    cur = str(data.get("currency") or "usd").upper()
    if stream == "invoices":
        if data.get("draft"):
            return {}
        return {
            "invoices": [
                {
                    "date": _day(data["date"]),
                    "payee": name or "Unknown customer",
                    "narration": f"Invoice {data.get('number') or ''}",
                    "ar_account": ar,
                    "currency": cur,
                    "total": Decimal(data["total"]),
                    "number": data.get("number"),
                    "status": data.get("status"),
                }
            ],
            "invoice_lines": [
                {
                    "account": REVENUE.get(i.get("type"), "Income:Sales"),
                    "amount": Decimal(i["amount"]),
                    "memo": i.get("name"),
                }
                for i in data.get("items") or []
            ],
            "invoice_taxes": [
                {"account": "Liabilities:Sales Tax", "amount": Decimal(t["amount"])}
                for t in data.get("taxes") or []
            ],
            "invoice_discounts": [
                {"account": "Income:Discounts", "amount": Decimal(d["amount"])}
                for d in data.get("discounts") or []
            ],
        }
    if data.get("status") != "succeeded":
        return {}
    return {
        "transactions": [
            {
                "date": _day(data["date"]),
                "payee": name or "Unknown customer",
                "narration": f"{data['type']} {data.get('invoice') or ''}",
                "type": data["type"],
                "account": CASH.get(data.get("method") or "", "Assets:Undeposited Funds"),
                "ar_account": ar,
                "credit_account": ar_account(data.get("customer"), customers, "Liabilities:Customer Credit"),
                "currency": cur,
                "amount": Decimal(data["amount"]),
                "status": data["status"],
                "invoice": str(data.get("invoice") or ""),
                "method": data.get("method"),
            }
        ]
    }


def mapped(
    stream: str, data: Mapping[str, Any], customers: Mapping[str, str], *, deleted: bool = False
) -> MappedRecord:
    record = Record(stream, str(data["id"]), int(data.get("updated_at") or 0), data, deleted)
    return MappedRecord(record, {} if deleted else map_record(stream, data, customers))


def make_connector(tmp: Path, store: Store, **settings: Any) -> LedgerConnector:
    """An opened ledger connector keeping its rows in `store`, writing under `tmp`."""
    conf = LedgerSettings(enabled=True, **settings)
    conn = LedgerConnector(
        conf, ConnectorContext(name="ledger", outputs=store.outputs("ledger"), state_dir=tmp)
    )
    conn.open()
    return conn


def hledger(*args: str) -> str:
    """Run hledger; fail the test with its message on a non-zero exit."""
    exe = shutil.which("hledger")
    assert exe, "hledger is not installed (apt-get install hledger)"
    proc = subprocess.run([exe, *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"hledger {' '.join(args)}:\n{proc.stderr}{proc.stdout}"
    return proc.stdout


def hledger_check(path: Path) -> None:
    """hledger accepts the journal: parses, balances, every account and commodity declared, dates ordered."""
    hledger("check", "-f", str(path), "--strict", "ordereddates")


def ledger_cli(path: Path, *args: str) -> str:
    """Run ledger-cli with `--pedantic` (undeclared accounts, commodities and metadata tags are
    errors); fail the test on a non-zero exit or any warning on stderr."""
    exe = shutil.which("ledger")
    assert exe, "ledger-cli is not installed (apt-get install ledger)"
    proc = subprocess.run(
        [exe, "-f", str(path), "--pedantic", *args], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0 and not proc.stderr.strip(), f"ledger {' '.join(args)}:\n{proc.stderr}"
    return proc.stdout


def ledger_check(path: Path) -> None:
    """ledger-cli accepts the journal: `--pedantic` balance and a `--strict` one without warnings."""
    ledger_cli(path, "balance")
    ledger_cli(path, "--strict", "balance")


def ledger_ar(path: Path, prefix: str = "Assets:Accounts Receivable") -> dict[tuple[str, str], Decimal]:
    """ledger-cli's balance of every receivable account, by (account, commodity); zeros left out."""
    out = ledger_cli(path, "register", "--format", "%(account)\t%(quantity(amount))\t%(commodity(amount))\n")
    result: dict[tuple[str, str], Decimal] = {}
    for line in out.splitlines():
        account, quantity, commodity = line.split("\t")
        if account == prefix or account.startswith(prefix + ":"):
            key = (account, commodity)
            result[key] = result.get(key, Decimal(0)) + Decimal(quantity.replace(",", ""))
    return {k: v for k, v in result.items() if v}


def beancount_ar(path: Path, prefix: str = "Assets:Accounts-Receivable") -> dict[tuple[str, str], Decimal]:
    """bean-check's view: the balance of every receivable account, by (account, currency)."""
    from beancount import loader
    from beancount.core import data

    entries, errors, _ = loader.load_file(str(path))
    assert not errors, errors
    result: dict[tuple[str, str], Decimal] = {}
    for e in entries:
        if isinstance(e, data.Transaction):
            for p in e.postings:
                if p.account.startswith(prefix + ":") and p.units.number is not None:
                    key = (p.account, p.units.currency)
                    result[key] = result.get(key, Decimal(0)) + p.units.number
    return {k: v for k, v in result.items() if v}


def bean_check(path: Path) -> None:
    """bean-check accepts the journal."""
    proc = subprocess.run([str(BEAN_CHECK), str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and not proc.stdout.strip() and not proc.stderr.strip(), (
        proc.stdout + proc.stderr
    )


def ar_balances(path: Path, prefix: str = "Assets:Accounts Receivable") -> dict[tuple[str, str], Decimal]:
    """hledger's balance of every receivable account, by (account, commodity); zero balances left out."""
    out = hledger("balance", "-f", str(path), f"^{prefix}(:|$)", "--flat", "--no-total", "-O", "json")
    rows = json.loads(out, parse_float=Decimal)
    result: dict[tuple[str, str], Decimal] = {}
    for row in rows[0]:
        account = row[0]
        for amt in row[3]:
            mantissa = Decimal(amt["aquantity"]["decimalMantissa"])
            value = mantissa.scaleb(-int(amt["aquantity"]["decimalPlaces"]))
            if value:
                result[(account, amt["acommodity"])] = value
    return result
