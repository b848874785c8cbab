"""Run the baseline, tap-invoiced 0.3.0, against a local sandbox. Use bench/.venv-tap's python.

    bench/.venv-tap/bin/python bench/tap_runner.py --url http://127.0.0.1:PORT --api-key KEY \
        [--state state.json] [--streams customers,invoices] [--sleep-scale 0.02]

The tap's real entry point (`tap_invoiced.main`) runs with a config and a catalog that
selects the streams and all their fields. Singer messages go to stdout, the tap's log to
stderr, as with `tap-invoiced --config ... --catalog ...`.

The one change to the tap's world: the `invoiced` SDK hard-codes its API base URL as class
attributes of `invoiced.Client` (`ApiBase`, `ApiBaseSandbox`); both are pointed at `--url`.
Nothing else of the tap or the SDK is altered. Two observers are added:

- `Client.request` is wrapped to count requests (the call itself is unchanged);
- with `--sleep-scale F`, `time.sleep(s)` records the seconds asked for and sleeps `s * F`
  (0: not at all), so a bench can show what backoff would wait without waiting that long
  (only the 429 bench uses it).

On exit (normal, error or SIGTERM) one JSON line goes to stderr:
`TAP_RUNNER {"requests": N, "sleeps": [...], "error": "..."|null, "seconds": S}`.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time

SUMMARY_PREFIX = "TAP_RUNNER "


def _catalog(streams: list[str]) -> dict:
    from tap_invoiced.discover import discover_streams

    catalog = discover_streams()
    for entry in catalog["streams"]:
        chosen = entry["tap_stream_id"] in streams
        for md in entry["metadata"]:
            if md["breadcrumb"] == [] or md["breadcrumb"] == ():
                md["metadata"]["selected"] = chosen
            elif chosen:
                md["metadata"]["selected"] = True
    # The tap syncs streams in catalog order; keep the order asked for (customers first).
    catalog["streams"].sort(
        key=lambda e: streams.index(e["tap_stream_id"]) if e["tap_stream_id"] in streams else 99
    )
    return catalog


def main() -> int:  # noqa: PLR0915 - a flat script of set-up steps
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="sandbox base URL (http://127.0.0.1:PORT)")
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--state", help="Singer state file to resume from")
    parser.add_argument("--streams", default="customers,invoices")
    parser.add_argument("--start-date", default="2000-01-01T00:00:00Z")
    parser.add_argument(
        "--sleep-scale", type=float, help="record each sleep and sleep only this fraction of it (0: none)"
    )
    args = parser.parse_args()
    if not args.url.startswith(("http://127.", "http://localhost")):
        parser.error("--url must be a loopback address")

    import invoiced

    invoiced.Client.ApiBase = args.url.rstrip("/")
    invoiced.Client.ApiBaseSandbox = args.url.rstrip("/")

    summary: dict = {"requests": 0, "sleeps": [], "error": None}
    started = time.monotonic()
    original_request = invoiced.Client.request

    def counted_request(self, *a, **kw):  # type: ignore[no-untyped-def]
        summary["requests"] += 1
        return original_request(self, *a, **kw)

    invoiced.Client.request = counted_request

    if args.sleep_scale is not None:
        real_sleep, scale = time.sleep, args.sleep_scale

        def recorded_sleep(seconds: float) -> None:
            summary["sleeps"].append(round(float(seconds), 3))
            summary["slept"] = round(summary.get("slept", 0.0) + seconds * scale, 3)
            if scale > 0:
                real_sleep(seconds * scale)

        time.sleep = recorded_sleep

    def report() -> None:
        summary["seconds"] = round(time.monotonic() - started, 3)
        sys.stderr.write(SUMMARY_PREFIX + json.dumps(summary) + "\n")
        sys.stderr.flush()

    def on_term(signum, frame):  # type: ignore[no-untyped-def]
        summary["error"] = "terminated"
        report()
        os._exit(143)

    signal.signal(signal.SIGTERM, on_term)

    streams = [s for s in args.streams.split(",") if s]
    with tempfile.TemporaryDirectory(prefix="tap-invoiced-") as tmp:
        config_path = os.path.join(tmp, "config.json")
        catalog_path = os.path.join(tmp, "catalog.json")
        with open(config_path, "w") as fh:
            json.dump({"api_key": args.api_key, "start_date": args.start_date, "sandbox": "false"}, fh)
        with open(catalog_path, "w") as fh:
            json.dump(_catalog(streams), fh)
        sys.argv = ["tap-invoiced", "--config", config_path, "--catalog", catalog_path]
        if args.state:
            sys.argv += ["--state", args.state]
        import tap_invoiced

        try:
            tap_invoiced.main()
        except BaseException as exc:
            summary["error"] = f"{exc.__class__.__name__}: {exc}"
            report()
            return 1
    report()
    return 0


if __name__ == "__main__":
    sys.exit(main())
