"""One process of an account walking listings: `python -m tests.invoiced.pace_walker SPEC`.

SPEC is JSON: base_url, api_key, store_url (null: the client paces itself alone, as
before shared pacing), account, streams (each walked by one thread), per_page. The walker
prints `ready`, waits for a line on stdin (so that several start at once, tied to their
readiness rather than a sleep), walks, then prints one JSON line: the ids it read per
stream and its client's counters. Used by tests/invoiced/test_shared_pacing.py and bench.
"""

from __future__ import annotations

import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from syncd.invoiced import InvoicedClient, RetryPolicy
from syncd.store.database import make_engine
from syncd.store.pacing import SharedPacer, share_pacing


def walk(client: InvoicedClient, stream: str, per_page: int) -> list[str]:
    ids: list[str] = []
    for page in client.iter_pages(f"/{stream}", {"per_page": str(per_page)}):
        ids.extend(str(item["id"]) for item in page.items)
    return ids


def main(spec: dict[str, Any]) -> dict[str, Any]:
    client = InvoicedClient.connect(spec["base_url"], spec["api_key"], policy=RetryPolicy(attempts=4))
    engine = None
    if spec.get("store_url"):
        engine = make_engine(spec["store_url"])
        client.pace_key = spec.get("account", "default")
        share_pacing(client, engine)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    sys.stdin.readline()
    started = time.time()
    streams: list[str] = spec["streams"]
    try:
        with ThreadPoolExecutor(len(streams)) as pool:
            ids = dict(
                zip(streams, pool.map(lambda s: walk(client, s, spec["per_page"]), streams), strict=True)
            )
    finally:
        client.close()
        if engine is not None:
            engine.dispose()
    pacer = client.pacer
    return {
        "ids": ids,
        "stats": client.stats.snapshot(),
        "shared_calls": pacer.shared_calls if isinstance(pacer, SharedPacer) else 0,
        "episodes": pacer.episodes,
        "walk": [started, time.time()],  # wall clock: the bench's span of all walkers
    }


if __name__ == "__main__":
    from syncd import log

    log.configure(json=True, level="warning", stream=sys.stderr)  # stdout carries the protocol
    result = main(json.loads(sys.argv[1]))
    sys.stdout.write(json.dumps(result) + "\n")


def run_walkers(
    base_url: str,
    api_key: str,
    streams: list[list[str]],
    store_url: str | None,
    per_page: int,
    account: str = "default",
) -> list[dict[str, Any]]:
    """One walker of one account per entry of `streams` (the streams it walks), started
    together; their results once all are done."""
    import os
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    spec = {
        "base_url": base_url,
        "api_key": api_key,
        "store_url": store_url,
        "account": account,
        "per_page": per_page,
    }
    env = {**os.environ, "PYTHONPATH": str(root), "PYTHONUNBUFFERED": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.invoiced.pace_walker", json.dumps({**spec, "streams": mine})],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=root,
            env=env,
        )
        for mine in streams
    ]
    try:
        for proc in procs:  # every one ready (imported, store migrated) before any starts
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if line.strip() != "ready":
                proc.kill()
                _, err = proc.communicate()
                raise RuntimeError(f"walker did not start: {line!r} {err[-2000:]}")
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        results = []
        for proc in procs:
            out, err = proc.communicate(timeout=600)
            if proc.returncode != 0:
                raise RuntimeError(f"walker failed ({proc.returncode}): {err[-2000:]}")
            results.append(json.loads(out.strip().splitlines()[-1]))
        return results
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
