"""Run one syncd sync against a local sandbox in this process; used by bench/run.py.

    .venv/bin/python bench/syncd_runner.py --url http://127.0.0.1:PORT --api-key KEY \
        --store /tmp/x.db --out /tmp/out [--streams customers,invoices] [--windows 4] [--ledger]

CSV output through mappings/csv.toml (and with --ledger an hledger journal in the same
folder), SQLite store. Prints one line on stdout at the end:
`SYNCD_RUNNER {report as JSON, "client_requests": N, "cpu_start": s, "cpu_sync": s}`:
the process's CPU seconds (all threads) spent before the sync (imports, set-up) and in it.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from syncd import log  # noqa: E402
from syncd.config import Settings  # noqa: E402
from syncd.engine import connect, run_sync  # noqa: E402

STREAMS = ("customers", "invoices", "transactions")


def settings_for(args: argparse.Namespace) -> Settings:
    wanted = [s for s in args.streams.split(",") if s]
    streams: dict[str, dict[str, Any]] = {s: {"enabled": s in wanted} for s in STREAMS}
    if args.windows is not None:
        for name in ("invoices", "transactions"):
            streams[name]["windows"] = args.windows
    invoiced: dict[str, Any] = {"base_url": args.url, "api_key": args.api_key}
    if args.retry_budget is not None:
        invoiced["retry_budget"] = args.retry_budget
    if args.retry_attempts is not None:
        invoiced["retry_attempts"] = args.retry_attempts
    connectors: dict[str, Any] = {
        "csv": {"enabled": True, "directory": str(args.out), "mapping": str(ROOT / "mappings" / "csv.toml")}
    }
    if args.ledger:
        connectors["ledger"] = {
            "enabled": True,
            "path": str(args.out / "invoiced.journal"),
            "mapping": str(ROOT / "mappings" / "ledger.toml"),
        }
    return Settings(invoiced=invoiced, store={"url": f"sqlite:///{args.store}"}, streams=streams, connectors=connectors)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _client_requests(client: Any) -> int | None:
    stats = getattr(client, "stats", None)
    for name in ("requests", "total", "count"):
        value = getattr(stats, name, None)
        if isinstance(value, int):
            return value
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--streams", default="customers,invoices")
    parser.add_argument("--windows", type=int)
    parser.add_argument("--retry-budget", type=float)
    parser.add_argument("--retry-attempts", type=int)
    parser.add_argument("--ledger", action="store_true", help="the ledger connector too")
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args()
    if not args.url.startswith(("http://127.", "http://localhost")):
        parser.error("--url must be a loopback address")
    log.configure(level=args.log_level)
    settings = settings_for(args)
    client = connect(settings)
    started, cpu_start = time.monotonic(), _cpu()
    try:
        report = run_sync(settings, client=client)
        result: dict[str, Any] = report.as_dict()
    except BaseException as exc:  # reported, not hidden: the bench prints it
        result = {"ok": False, "error": f"{exc.__class__.__name__}: {exc}"}
    finally:
        client.close()
    result["wall"] = round(time.monotonic() - started, 3)
    result["cpu_start"], result["cpu_sync"] = round(cpu_start, 3), round(_cpu() - cpu_start, 3)
    result["client_requests"] = _client_requests(client)
    if result["client_requests"] is None:
        del result["client_requests"]
    print("SYNCD_RUNNER " + json.dumps(result), flush=True)
    return 0 if result.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
