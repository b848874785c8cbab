"""How many list pages (100 records each) the sandbox serves per second; printed, never asserted.

    .venv/bin/python bench/sandbox_bench.py [--invoices 100000] [--seconds 5] [--inproc]

The sandbox runs in its own process (`python -m syncd.sandbox`) unless --inproc, so the
clients here do not share its GIL. Three scenarios, each for --seconds:

- sequential: one keep-alive connection walks `updated_after=C&sort=updated_at asc` page 1
  after page 1, as the sync loop does (the cursor moves to each page's last updated_at);
- sequential paging: one connection follows rel=next through `sort=id asc`;
- concurrent: 32 connections, each paging through the listing as above.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager

UPDATED = re.compile(rb'"updated_at":(\d+)')
NEXT = re.compile(r'<([^>]+)>; rel="next"')


@contextmanager
def sandbox(invoices: int, inproc: bool) -> Iterator[tuple[str, str]]:
    """(url, api key) of a seeded sandbox, stopped on exit."""
    customers, transactions = max(10, invoices // 50), invoices // 5
    if inproc:
        from syncd.sandbox import Sandbox, SandboxConfig

        sb = Sandbox(SandboxConfig(seed=1, customers=customers, invoices=invoices, transactions=transactions))
        try:
            yield sb.start(), sb.api_key
        finally:
            sb.stop()
        return
    argv = [
        sys.executable,
        "-m",
        "syncd.sandbox",
        "--port",
        "0",
        "--seed",
        "1",
        "--customers",
        str(customers),
        "--invoices",
        str(invoices),
        "--transactions",
        str(transactions),
    ]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        match = re.match(r"syncd sandbox: serving (\S+) api_key=(\S+)", proc.stdout.readline())
        if not match:
            raise SystemExit("the sandbox did not start")
        yield match.group(1), match.group(2)
    finally:
        proc.terminate()
        proc.wait(30)


class Conn:
    """A bare keep-alive HTTP/1.1 connection: cheap enough that the sandbox, not the client, is measured."""

    def __init__(self, url: str, key: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.http = http.client.HTTPConnection(host, int(port), timeout=60)
        self.auth = "Basic " + base64.b64encode(f"{key}:".encode()).decode()

    def get(self, path: str) -> tuple[bytes, str]:
        self.http.request("GET", path, headers={"Authorization": self.auth})
        r = self.http.getresponse()
        data = r.read()
        if r.status != 200:
            raise SystemExit(f"GET {path}: HTTP {r.status} {data[:200]!r}")
        return data, r.getheader("Link") or ""


def cursor_walk(url: str, key: str, seconds: float) -> int:
    """Pages served to one connection walking the updated_at cursor (page 1 each time), in `seconds`."""
    conn, pages, cursor = Conn(url, key), 0, 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        data, _ = conn.get(f"/invoices?updated_after={cursor}&sort=updated_at+asc&per_page=100")
        pages += 1
        # The cursor is the last record's updated_at; reading it from the tail avoids parsing the page.
        last = UPDATED.findall(data[-2000:])
        cursor = (
            int(last[-1])
            if last and data.count(b'"object":"invoice"') == 100 and int(last[-1]) > cursor
            else 0
        )
    return pages


def link_walk(url: str, key: str, seconds: float) -> int:
    """Pages served to one connection following rel=next (restarting at the end), in `seconds`."""
    conn, pages = Conn(url, key), 0
    start = "/invoices?per_page=100&sort=id+asc"
    path = start
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        _, link = conn.get(path)
        pages += 1
        nxt = NEXT.search(link)
        path = nxt.group(1).split(url, 1)[1] if nxt else start
    return pages


def _threads(url: str, key: str, seconds: float, n: int) -> int:
    counts: list[int] = []
    lock = threading.Lock()

    def run() -> None:
        got = link_walk(url, key, seconds)
        with lock:
            counts.append(got)

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts)


def concurrent(url: str, key: str, seconds: float, connections: int = 32, procs: int = 4) -> int:
    """Pages served to `connections` parallel connections (from `procs` client processes), in `seconds`."""
    with ProcessPoolExecutor(max_workers=procs) as pool:
        futures = [pool.submit(_threads, url, key, seconds, connections // procs) for _ in range(procs)]
        return sum(f.result() for f in futures)


def _warm(url: str, key: str) -> int:
    conn, pages, path = Conn(url, key), 0, "/invoices?per_page=100&sort=id+asc"
    while True:
        _, link = conn.get(path)
        pages += 1
        nxt = NEXT.search(link)
        if not nxt:
            return pages
        path = nxt.group(1).split(url, 1)[1]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--invoices", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--inproc", action="store_true", help="serve from this process (shares the GIL)")
    args = parser.parse_args()
    started = time.perf_counter()
    with sandbox(args.invoices, args.inproc) as (url, key):
        print(
            f"sandbox with {args.invoices:,} invoices ready in {time.perf_counter() - started:.1f} s "
            f"({'in-process' if args.inproc else 'own process'})",
            flush=True,
        )
        # Objects are serialized on first read and cached: one pass warms the cache (a first sync pays it).
        cold = time.perf_counter()
        pages = _warm(url, key)
        print(
            f"first full pass (serializing): {pages} pages in {time.perf_counter() - cold:.1f} s", flush=True
        )
        for name, run in (
            ("sequential cursor walk", cursor_walk),
            ("sequential rel=next", link_walk),
            ("32 connections, rel=next", concurrent),
        ):
            pages = run(url, key, args.seconds)
            print(
                f"{name:28s} {pages / args.seconds:8.1f} pages/s  ({pages} pages of 100 in {args.seconds:g} s)",
                flush=True,
            )


if __name__ == "__main__":
    main()
