"""One sandbox, several accounts: each API key sees its own data, faults, rate limit and stats."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from syncd.sandbox import Account, Sandbox, SandboxConfig
from tests.sandbox.helpers import assert_error, body, pages


def as_(account: Account, sb: Sandbox) -> httpx.Client:
    """A client authenticated as one account."""
    return httpx.Client(base_url=sb.url, auth=(account.api_key, ""), timeout=10)


def two(make_sandbox: Callable[..., Sandbox], **config: Any) -> tuple[Sandbox, Account, Account]:
    sb = make_sandbox(accounts=2, **config)
    a, b = sb.accounts.values()
    return sb, a, b


def test_accounts_are_named_keyed_and_seeded_deterministically() -> None:
    cfg = SandboxConfig(seed=11, customers=4, invoices=9, transactions=3, accounts=3)
    sb = Sandbox(cfg)
    assert list(sb.accounts) == ["acct01", "acct02", "acct03"]
    keys = [a.api_key for a in sb.accounts.values()]
    assert len(set(keys)) == 3 and keys == [cfg.key(i) for i in range(3)]
    assert Sandbox(cfg).accounts["acct02"].api_key == keys[1]  # same config, same keys
    # Account i is the one-account sandbox of seed + i: same key, same data.
    for i, account in enumerate(sb.accounts.values()):
        alone = Sandbox(SandboxConfig(seed=11 + i, customers=4, invoices=9, transactions=3))
        assert account.api_key == alone.api_key
        assert account.data.list("invoices") == alone.data.list("invoices")
    assert sb.accounts["acct01"].data.list("invoices") != sb.accounts["acct02"].data.list("invoices")
    assert "sk_sandbox" not in repr(sb.accounts["acct01"])


def test_one_account_is_the_sandbox_of_today() -> None:
    cfg = SandboxConfig(seed=5, customers=3, invoices=5, transactions=2)
    sb = Sandbox(cfg)
    (only,) = sb.accounts.values()
    assert sb.api_key == only.api_key == cfg.key()
    assert sb.data is only.data and sb.knobs is only.knobs
    given = Sandbox(SandboxConfig(seed=5, customers=3, invoices=5, transactions=2, api_key="sk_given_1234"))
    assert given.api_key == "sk_given_1234"


def test_each_key_lists_and_retrieves_only_its_own_data(make_sandbox: Callable[..., Sandbox]) -> None:
    sb, a, b = two(make_sandbox)
    with as_(a, sb) as ca, as_(b, sb) as cb:
        for account, c in ((a, ca), (b, cb)):
            listed = pages(c, "/invoices", {"per_page": "25"})
            assert [i["number"] for i in listed] == [i["number"] for i in account.data.list("invoices")]
            assert body(c.get("/customers/1"))["name"] == account.data.list("customers")[0]["name"]
        assert body(ca.get("/invoices/1")) == a.data.get("invoices", 1) != b.data.get("invoices", 1)


def test_a_write_to_one_account_is_invisible_to_the_other(make_sandbox: Callable[..., Sandbox]) -> None:
    sb, a, b = two(make_sandbox)
    before_b = b.data.list("transactions")
    invoice = next(
        i
        for i in a.data.list("invoices")
        if i["balance"] > 0 and i["status"] not in ("draft", "voided") and not i["closed"]
    )
    with as_(a, sb) as ca, as_(b, sb) as cb:
        created = ca.post(
            "/transactions", json={"invoice": invoice["id"], "type": "payment", "amount": 1, "method": "check"}
        )
        assert created.status_code == 201, created.text
        tid = created.json()["id"]
        assert ca.get(f"/transactions/{tid}").status_code == 200
        assert_error(cb.get(f"/transactions/{tid}"), 404, None)
        events_a = [e["type"] for e in body(ca.get("/events", params={"per_page": "100"}))]
        events_b = body(cb.get("/events", params={"per_page": "100"}))
    assert "transaction.created" in events_a
    assert events_b == []
    assert b.data.list("transactions") == before_b


def test_an_idempotency_key_is_remembered_per_account(make_sandbox: Callable[..., Sandbox]) -> None:
    sb, a, b = two(make_sandbox)
    headers = {"Idempotency-Key": "same-key-1"}
    with as_(a, sb) as ca, as_(b, sb) as cb:
        first = ca.post("/customers", json={"name": "Acme"}, headers=headers)
        again = ca.post("/customers", json={"name": "Acme"}, headers=headers)
        other = cb.post("/customers", json={"name": "Acme"}, headers=headers)
    assert again.headers.get("Idempotent-Replayed") == "true" and again.json() == first.json()
    assert other.status_code == 201 and "Idempotent-Replayed" not in other.headers
    assert a.data.count("customers") == b.data.count("customers") == 11  # 10 seeded + 1 each


def test_rate_limits_are_per_account(make_sandbox: Callable[..., Sandbox]) -> None:
    sb, a, b = two(make_sandbox, rate_limit=0.05, burst=3)  # one token every 20 s after the burst
    with as_(a, sb) as ca, as_(b, sb) as cb:
        codes_a = [ca.get("/customers").status_code for _ in range(5)]
        codes_b = [cb.get("/customers").status_code for _ in range(5)]  # A's burst spent none of B's
        b.knobs.rate_limit = None
        assert cb.get("/customers").status_code == 200
        assert ca.get("/customers").status_code == 429
    assert codes_a == codes_b == [200, 200, 200, 429, 429]
    assert a.stats.served_429 == 3 and b.stats.served_429 == 2


def test_fault_knobs_are_per_account(make_sandbox: Callable[..., Sandbox]) -> None:
    sb, a, b = two(make_sandbox)
    b.knobs.p500 = 1.0
    with as_(a, sb) as ca, as_(b, sb) as cb:
        assert {ca.get("/invoices").status_code for _ in range(10)} == {200}
        assert cb.get("/invoices").status_code == 500
    assert sb.knobs is a.knobs and a.knobs.p500 == 0.0


def test_unknown_keys_get_401_and_count_in_no_account(make_sandbox: Callable[..., Sandbox]) -> None:
    sb, a, b = two(make_sandbox)
    for auth in (("sk_not_a_sandbox_key", ""), (a.api_key, "password"), (f"{a.api_key}x", "")):
        r = httpx.get(f"{sb.url}/invoices", auth=auth, timeout=10)
        assert_error(r, 401, None)
    assert sb.stats.count("GET", "/invoices") == 3
    assert a.stats.total == b.stats.total == 0


def test_stats_are_per_account_and_sum_in_the_sandbox(make_sandbox: Callable[..., Sandbox]) -> None:
    sb, a, b = two(make_sandbox)
    with as_(a, sb) as ca, as_(b, sb) as cb:
        for _ in range(3):
            ca.get("/invoices")
        cb.get("/customers")
        cb.get("/invoices/2")
    assert a.stats.count("GET", "/invoices") == 3 and a.stats.total == 3
    assert b.stats.count("GET", "/invoices") == 0 and b.stats.count("GET", "/customers") == 1
    assert b.stats.total == 2
    assert sb.stats.total == 5 and sb.stats.count("GET", "/invoices") == 3


def test_the_command_serves_several_accounts_and_writes_a_ready_config(tmp_path: Path) -> None:
    env_file, toml = tmp_path / "sandbox.env", tmp_path / "syncd.toml"
    sizes = ["--customers", "3", "--invoices", "7", "--transactions", "2"]
    files = ["--env-file", str(env_file), "--toml", str(toml)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "syncd.sandbox", "--port", "0", "--accounts", "3", *sizes, *files],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        head = re.fullmatch(
            r"syncd sandbox: serving (http://127\.0\.0\.1:\d+) accounts=3\n", proc.stdout.readline()
        )
        assert head, "no banner"
        url = head[1]
        keys = {}
        for _ in range(3):
            line = re.fullmatch(r"syncd sandbox: account (acct\d\d) api_key=(\S+)\n", proc.stdout.readline())
            assert line
            keys[line[1]] = line[2]
        assert list(keys) == ["acct01", "acct02", "acct03"] and len(set(keys.values())) == 3
        invoices = set()
        for key in keys.values():
            r = httpx.get(f"{url}/invoices/1", auth=(key, ""), timeout=10)
            assert r.status_code == 200
            invoices.add(r.text)
        assert len(invoices) == 3  # three data sets
        assert env_file.read_text(encoding="utf-8").splitlines() == [
            f"SANDBOX_{name.upper()}_KEY={key}" for name, key in keys.items()
        ]
        assert env_file.stat().st_mode & 0o777 == 0o600
        from syncd.accounts import load_accounts

        variables = dict(line.split("=", 1) for line in env_file.read_text(encoding="utf-8").splitlines())
        with pytest.MonkeyPatch.context() as mp:
            for name, value in variables.items():
                mp.setenv(name, value)
            accounts = load_accounts(toml)
        assert {n: s.invoiced.api_key.get_secret_value() for n, s in accounts.items()} == keys
        assert {s.invoiced.base_url for s in accounts.values()} == {url}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.stderr is not None
    stderr = proc.stderr.read()
    assert not any(key in stderr for key in keys.values())
    assert os.path.exists(toml)
