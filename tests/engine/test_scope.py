"""A stream's scope is part of its checkpoint: widened, changed and narrowed scopes (issue 12 §1)."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Mapping
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest
from rich.console import Console
from sqlalchemy import delete
from structlog.testing import capture_logs

from syncd.config import Settings
from syncd.engine import SyncReport, connect, run_sync
from syncd.scope import Scope, compare, meta_key
from syncd.status import render_status
from syncd.store import Store
from syncd.store.models import Meta
from syncd.windows import PROBES_PER_EDGE
from tests.engine.helpers import assert_csv_matches, read_csv_dir, settings_for

PER_PAGE = 5
WINDOWS = 4  # the default date windows of a first pass of invoices
Keep = Mapping[str, Callable[[Any], bool]]


# -- the scope itself ---------------------------------------------------------------
def test_scopes_compare_as_sets_of_conditions() -> None:
    emea = Scope({"region": "emea"})
    assert compare(Scope(), emea) == "narrowed"
    assert compare(emea, Scope()) == "widened"
    assert compare(emea, Scope({"region": "amer"})) == "changed"
    assert compare(emea, Scope({"region": "emea"}, {"currency": "usd"})) == "narrowed"
    assert compare(Scope({"k": "v"}), Scope(filter={"k": "v"})) == "changed"  # metadata[k] is not filter[k]
    assert Scope({"b": "1", "a": "2"}, {"x": "y"}).dumps() == Scope({"a": "2", "b": "1"}, {"x": "y"}).dumps()
    assert Scope().partition() != emea.partition()


@pytest.mark.parametrize(
    ("scope", "data", "verdict"),
    [
        (Scope({"region": "emea"}), {"metadata": {"region": "emea"}}, True),
        (Scope({"region": "emea"}), {"metadata": {"region": "amer"}}, False),
        (Scope({"region": "emea"}), {"metadata": {}}, False),  # a missing key never matches
        (Scope({"region": "emea"}), {}, False),
        (Scope(filter={"payment_terms": "NET 30"}), {"payment_terms": "NET 30"}, True),
        (Scope(filter={"payment_terms": "NET 30"}), {"payment_terms": None}, False),
        (Scope(filter={"autopay": "true"}), {"autopay": True}, True),
        (Scope(filter={"autopay": "0"}), {"autopay": False}, True),
        (Scope(filter={"autopay": "true"}), {"autopay": False}, False),
        (Scope(filter={"customer": "12"}), {"customer": 12}, True),
        (Scope(filter={"customer": "12"}), {"customer": {"id": 12, "name": "x"}}, True),
        (Scope(filter={"status": "paid"}), {"id": 1}, None),  # cannot be judged: kept
        (Scope({"region": "emea"}, {"status": "paid"}), {"metadata": {"region": "amer"}}, False),
    ],
)
def test_a_stored_record_is_judged_on_its_raw_json(scope: Scope, data: dict[str, Any], verdict: bool | None) -> None:
    assert scope.matches(data) is verdict


# -- end to end on the sandbox ------------------------------------------------------
def _settings(
    sandbox: Any, tmp_path: Path, customers: dict[str, Any], invoices: dict[str, Any], store: str = "", **extra: Any
) -> Settings:
    return settings_for(
        sandbox,
        store or f"sqlite:///{tmp_path / 's.db'}",
        tmp_path / "out",
        invoiced={"per_page": PER_PAGE},
        streams={"customers": customers, "invoices": invoices, "transactions": {"enabled": False}},
        **extra,
    )


def _sync(
    sandbox: Any, settings: Settings, label: str, **kwargs: Any
) -> tuple[SyncReport, dict[str, int], dict[str, set[frozenset[tuple[str, str]]]]]:
    """One plain sync: its report, the list requests it made per stream (printed: the proof's
    request count) and the scope conditions those requests carried."""
    seen: dict[str, set[frozenset[tuple[str, str]]]] = {}
    client = connect(settings)
    real = client.get_page

    def get_page(target: str, params: Any = None) -> Any:
        url = httpx.URL(target)
        query = dict(params) if params is not None else dict(url.params)
        conditions = frozenset((k, v) for k, v in query.items() if k.startswith(("metadata[", "filter[")))
        seen.setdefault(url.path.rsplit("/", 1)[-1], set()).add(conditions)
        return real(target, params)

    client.get_page = get_page  # type: ignore[method-assign,assignment]
    sandbox.stats.reset()
    try:
        report = run_sync(settings, client=client, **kwargs)
    finally:
        client.close()
    asked = {s: sandbox.stats.count("GET", f"/{s}") for s in ("customers", "invoices")}
    print(f"{label}: list requests {asked}, report {({s: r.requests for s, r in report.streams.items()})}")
    return report, asked, seen


def _pages(n: int) -> int:
    """At most the requests a walk of n records needs: each page re-reads its boundary second."""
    return -(-n // (PER_PAGE - 1)) + 1


def _no_tx(keep: dict[str, Callable[[Any], bool]]) -> Keep:
    return {**keep, "transactions": lambda _: False}


def test_metadata_scope_changed_widened_narrowed_between_plain_syncs(make_sandbox: Any, tmp_path: Path) -> None:
    sandbox = make_sandbox(customers=60, invoices=120, transactions=0)
    customers = sandbox.data.list("customers")

    def region(r: str | None) -> Callable[[Any], bool]:
        return lambda c: r is None or c["metadata"].get("region") == r

    def count(r: str | None) -> int:
        return sum(1 for c in customers if region(r)(c))

    assert 0 < count("amer") < count("emea") + count("amer") < len(customers)
    out = tmp_path / "out"

    settings = _settings(sandbox, tmp_path, {"metadata": {"region": "amer"}}, {})
    report, _, _ = _sync(sandbox, settings, "first (amer)")
    assert report.ok, report.errors()
    assert_csv_matches(sandbox, out, _no_tx({"customers": region("amer")}))

    # Changed: only emea's records are read (a backfill of the new scope), amer's leave.
    settings = _settings(sandbox, tmp_path, {"metadata": {"region": "emea"}}, {})
    report, asked, seen = _sync(sandbox, settings, "changed (emea)")
    assert report.ok, report.errors()
    assert_csv_matches(sandbox, out, _no_tx({"customers": region("emea")}))
    assert report.streams["customers"].changed == count("emea")
    assert seen["customers"] == {frozenset({("metadata[region]", "emea")})}
    assert asked["customers"] == report.streams["customers"].requests <= _pages(count("emea"))
    with closing(Store.open(settings.store_url())) as store:
        assert Scope.loads(store.get_meta(meta_key("customers")) or "") == Scope({"region": "emea"})
        assert set(store.cursors("customers")) == {""}

    # Widened: the new scope is read once; what the store holds is not delivered twice.
    settings = _settings(sandbox, tmp_path, {}, {})
    report, asked, seen = _sync(sandbox, settings, "widened (all)")
    assert report.ok, report.errors()
    assert_csv_matches(sandbox, out, _no_tx({}))
    assert asked["customers"] <= _pages(len(customers))
    assert report.streams["customers"].changed == len(customers) - count("emea")
    assert report.streams["customers"].delivered["csv"] == len(customers) - count("emea")

    # Narrowed: no backfill at all, only the usual incremental request per stream.
    settings = _settings(sandbox, tmp_path, {"metadata": {"region": "apac"}}, {})
    report, asked, seen = _sync(sandbox, settings, "narrowed (apac)")
    assert report.ok, report.errors()
    assert asked == {"customers": 1, "invoices": 1}
    assert report.streams["customers"].requests == 1
    assert_csv_matches(sandbox, out, _no_tx({"customers": region("apac")}))

    # Narrowed again, by a filter next to the metadata; then nothing changes.
    apac_net30: Callable[[Any], bool] = lambda c: region("apac")(c) and c["payment_terms"] == "NET 30"  # noqa: E731
    assert any(apac_net30(c) for c in customers)
    settings = _settings(sandbox, tmp_path, {"metadata": {"region": "apac"}, "filter": {"payment_terms": "NET 30"}}, {})
    report, asked, seen = _sync(sandbox, settings, "narrowed (apac, NET 30)")
    assert report.ok and asked == {"customers": 1, "invoices": 1}
    assert_csv_matches(sandbox, out, _no_tx({"customers": apac_net30}))
    report, asked, seen = _sync(sandbox, settings, "unchanged")
    assert report.ok and asked == {"customers": 1, "invoices": 1}
    assert report.streams["customers"].delivered == {} and report.streams["invoices"].delivered == {}


def test_filter_scope_changed_widened_narrowed_between_plain_syncs(make_sandbox: Any, tmp_path: Path) -> None:
    sandbox = make_sandbox(customers=12, invoices=150, transactions=0)
    invoices = sandbox.data.list("invoices")

    def where(**conditions: Any) -> Callable[[Any], bool]:
        return lambda i: all(i[k] == v for k, v in conditions.items())

    def count(**conditions: Any) -> int:
        return sum(1 for i in invoices if where(**conditions)(i))

    assert 0 < count(currency="eur") < count(currency="usd") < len(invoices)
    out = tmp_path / "out"

    settings = _settings(sandbox, tmp_path, {}, {"filter": {"currency": "usd"}})
    report, _, _ = _sync(sandbox, settings, "first (usd)")
    assert report.ok, report.errors()
    assert_csv_matches(sandbox, out, _no_tx({"invoices": where(currency="usd")}))

    settings = _settings(sandbox, tmp_path, {}, {"filter": {"currency": "eur"}})
    report, asked, seen = _sync(sandbox, settings, "changed (eur)")
    assert report.ok, report.errors()
    assert_csv_matches(sandbox, out, _no_tx({"invoices": where(currency="eur")}))
    assert report.streams["invoices"].changed == count(currency="eur")
    # Only the new scope is read (its first pass: two requests and the count probes find its
    # date windows).
    assert seen["invoices"] == {frozenset({("filter[currency]", "eur")})}
    probes = 2 + PROBES_PER_EDGE * (WINDOWS - 1)
    assert asked["invoices"] <= _pages(count(currency="eur")) + probes + WINDOWS

    settings = _settings(sandbox, tmp_path, {}, {})
    report, asked, seen = _sync(sandbox, settings, "widened (all)")
    assert report.ok, report.errors()
    assert_csv_matches(sandbox, out, _no_tx({}))
    assert report.streams["invoices"].delivered["csv"] == len(invoices) - count(currency="eur")

    settings = _settings(sandbox, tmp_path, {}, {"filter": {"currency": "usd", "status": "paid"}})
    report, asked, seen = _sync(sandbox, settings, "narrowed (usd, paid)")
    assert report.ok, report.errors()
    assert asked == {"customers": 1, "invoices": 1}
    assert_csv_matches(sandbox, out, _no_tx({"invoices": where(currency="usd", status="paid")}))


def test_on_scope_exit_keep_leaves_the_rows_where_they_are(make_sandbox: Any, tmp_path: Path) -> None:
    sandbox = make_sandbox(customers=30, invoices=20, transactions=0)
    keep = {"csv": {"on_scope_exit": "keep"}}
    settings = _settings(sandbox, tmp_path, {}, {}, connectors=keep)
    assert run_sync(settings).ok
    before = read_csv_dir(tmp_path / "out")["customers"]
    settings = _settings(sandbox, tmp_path, {"metadata": {"region": "emea"}}, {}, connectors=keep)
    report, asked, seen = _sync(sandbox, settings, "narrowed, keep")
    assert report.ok and asked["customers"] == 1
    assert seen["customers"] == {frozenset({("metadata[region]", "emea")})}  # the incremental read of the new scope
    assert read_csv_dir(tmp_path / "out")["customers"] == before
    # The store mirrors the scope all the same: the left records count as gone.
    with closing(Store.open(settings.store_url())) as store:
        emea = sum(1 for c in sandbox.data.list("customers") if c["metadata"].get("region") == "emea")
        assert store.count_raw("customers") == emea < len(before) - 1


def _stopping_client(settings: Settings, stop: threading.Event, path: str, after: int) -> Any:
    """A client that sets `stop` once it has asked for `after` pages of `path`."""
    client = connect(settings)
    real = client.get_page
    asked = 0

    def get_page(target: str, params: Any = None) -> Any:
        nonlocal asked
        page = real(target, params)
        if target == path or target.split("?", maxsplit=1)[0].endswith(path):
            asked += 1
            if asked >= after:
                stop.set()
        return page

    client.get_page = get_page  # type: ignore[method-assign,assignment]
    return client


def test_a_killed_backfill_resumes_and_the_scope_switches_only_when_it_ends(
    make_sandbox: Any, tmp_path: Path, store_url: str
) -> None:
    sandbox = make_sandbox(customers=80, invoices=10, transactions=0)
    customers = sandbox.data.list("customers")
    assert 0 < sum(1 for c in customers if c["metadata"].get("region") == "amer") < len(customers) // 2
    settings = _settings(sandbox, tmp_path, {"metadata": {"region": "amer"}}, {}, store_url)
    assert run_sync(settings).ok

    widened = _settings(sandbox, tmp_path, {}, {}, store_url)
    stop = threading.Event()
    client = _stopping_client(widened, stop, "/customers", after=3)
    try:
        report = run_sync(widened, client=client, stop=stop)
    finally:
        client.close()
    assert not report.ok
    with closing(Store.open(widened.store_url())) as store:
        # Still the old scope: the backfill has not finished; its progress is a partition.
        assert Scope.loads(store.get_meta(meta_key("customers")) or "") == Scope({"region": "amer"})
        partition = Scope().partition()
        assert store.cursors("customers").get(partition, 0) > 0
        out = io.StringIO()
        render_status(widened, Console(file=out, width=250))
    assert "backfilling all" in out.getvalue() and "metadata[region]=amer (configured: all)" in out.getvalue()

    report, asked, _ = _sync(sandbox, widened, "resumed backfill")
    assert report.ok, report.errors()
    assert 0 < asked["customers"] < _pages(len(customers)) - 1  # resumed, not restarted
    assert_csv_matches(sandbox, tmp_path / "out", _no_tx({}))
    with closing(Store.open(widened.store_url())) as store:
        assert Scope.loads(store.get_meta(meta_key("customers")) or "") == Scope()
        assert set(store.cursors("customers")) == {""}


def test_an_abandoned_backfill_leaves_nothing_behind(make_sandbox: Any, tmp_path: Path) -> None:
    sandbox = make_sandbox(customers=60, invoices=10, transactions=0)
    amer: Callable[[Any], bool] = lambda c: c["metadata"].get("region") == "amer"  # noqa: E731
    settings = _settings(sandbox, tmp_path, {"metadata": {"region": "amer"}}, {})
    assert run_sync(settings).ok
    widened = _settings(sandbox, tmp_path, {}, {})
    stop = threading.Event()
    client = _stopping_client(widened, stop, "/customers", after=3)
    try:
        assert not run_sync(widened, client=client, stop=stop).ok
    finally:
        client.close()
    assert len(read_csv_dir(tmp_path / "out")["customers"]) - 1 > sum(1 for c in sandbox.data.list("customers") if amer(c))
    # The user goes back to the old scope: what the half backfill delivered leaves again.
    report, asked, _ = _sync(sandbox, settings, "back to amer")
    assert report.ok and asked["customers"] == 1
    assert_csv_matches(sandbox, tmp_path / "out", _no_tx({"customers": amer}))
    with closing(Store.open(settings.store_url())) as store:
        assert set(store.cursors("customers")) == {""}


def test_full_with_a_narrowed_scope_removes_what_left_it(make_sandbox: Any, tmp_path: Path) -> None:
    sandbox = make_sandbox(customers=30, invoices=20, transactions=0)
    assert run_sync(_settings(sandbox, tmp_path, {}, {})).ok
    emea: Callable[[Any], bool] = lambda c: c["metadata"].get("region") == "emea"  # noqa: E731
    report = run_sync(_settings(sandbox, tmp_path, {"metadata": {"region": "emea"}}, {}), full=True)
    assert report.ok, report.errors()
    assert_csv_matches(sandbox, tmp_path / "out", _no_tx({"customers": emea}))


def test_a_store_without_a_recorded_scope_adopts_the_configured_one(make_sandbox: Any, tmp_path: Path) -> None:
    """A store from before scopes were recorded: its cursors are taken to answer today's scope."""
    sandbox = make_sandbox(customers=20, invoices=10, transactions=0)
    settings = _settings(sandbox, tmp_path, {"metadata": {"region": "emea"}}, {})
    assert run_sync(settings).ok
    with closing(Store.open(settings.store_url())) as store, store.engine.begin() as conn:
        conn.execute(delete(Meta).where(Meta.key == meta_key("customers")))  # type: ignore[arg-type]
    report, asked, _ = _sync(sandbox, settings, "adopted")
    assert report.ok and asked["customers"] == 1
    with closing(Store.open(settings.store_url())) as store:
        assert Scope.loads(store.get_meta(meta_key("customers")) or "") == Scope({"region": "emea"})


def test_a_changed_scope_is_logged_before_any_request(make_sandbox: Any, tmp_path: Path) -> None:
    sandbox = make_sandbox(customers=20, invoices=10, transactions=0)
    assert run_sync(_settings(sandbox, tmp_path, {"metadata": {"region": "emea"}}, {})).ok
    settings = _settings(sandbox, tmp_path, {"metadata": {"region": "amer"}}, {})
    client = connect(settings)
    real = client.get_page
    with capture_logs() as events:

        def get_page(target: str, params: Any = None) -> Any:
            events.append({"event": "request", "target": target})
            return real(target, params)

        client.get_page = get_page  # type: ignore[method-assign,assignment]
        try:
            assert run_sync(settings, client=client).ok
        finally:
            client.close()
    names = [e["event"] for e in events]
    changed = next(e for e in events if e["event"] == "stream.scope_changed")
    assert changed["old"] == "metadata[region]=emea" and changed["new"] == "metadata[region]=amer"
    assert changed["change"] == "changed" and changed["stream"] == "customers"
    assert names.index("stream.scope_changed") < names.index("request")
    assert "stream.scope_switched" in names and "stream.scope_exit" in names


def test_status_shows_each_streams_scope_next_to_its_cursor(make_sandbox: Any, tmp_path: Path) -> None:
    sandbox = make_sandbox(customers=10, invoices=10, transactions=0)
    settings = _settings(sandbox, tmp_path, {"metadata": {"region": "emea"}}, {"filter": {"currency": "usd"}})
    assert run_sync(settings).ok
    out = io.StringIO()
    render_status(settings, Console(file=out, width=250))
    lines = out.getvalue().splitlines()
    assert any("customers" in line and "metadata[region]=emea" in line for line in lines)
    assert any("invoices" in line and "filter[currency]=usd" in line for line in lines)
