"""Run the two contenders as child processes and measure each: wall time, peak RSS, output.

The baseline (tap-invoiced, bench/.venv-tap) and syncd (bench/syncd_runner.py, this venv)
each run in their own process, so neither shares a GIL with the sandbox or with this
harness, and each one's peak RSS is its own (`os.wait4` on that child, not RUSAGE_CHILDREN,
which would report the largest child seen so far).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
TAP_PYTHON = BENCH / ".venv-tap" / "bin" / "python"
TAP_SUMMARY = "TAP_RUNNER "
SYNCD_SUMMARY = "SYNCD_RUNNER "


@dataclass
class ProcResult:
    """One child process run."""

    returncode: int | None
    wall: float
    peak_rss_mb: float
    stderr_tail: list[str]
    cpu: float = 0.0  # user + system seconds of the child
    killed: str | None = None  # "budget" (SIGTERM at the time budget) or "kill" (SIGKILL on cue)


def _wait(
    proc: subprocess.Popen[Any], watch: Callable[[], bool] | None = None
) -> tuple[int, float, float, bool]:
    """Reap `proc`: (exit code, its own peak RSS in MiB, its CPU seconds, killed on `watch`'s cue).

    `watch()` is polled every 5 ms while the child runs; True SIGKILLs it.
    """
    killed = False
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG if watch else 0)
        if pid:
            break
        if watch is not None and not killed and watch():
            proc.send_signal(signal.SIGKILL)
            killed = True
        time.sleep(0.005)
    proc.returncode = os.waitstatus_to_exitcode(status)
    cpu = usage.ru_utime + usage.ru_stime
    return proc.returncode, usage.ru_maxrss / 1024, cpu, killed  # Linux reports ru_maxrss in KiB


def run_child(
    argv: list[str],
    *,
    on_line: Callable[[str], bool] | None = None,
    budget: float | None = None,
    watch: Callable[[], bool] | None = None,
    log_path: Path | None = None,
    env: dict[str, str] | None = None,
) -> ProcResult:
    """Run argv; feed each stdout line to `on_line` (True: SIGKILL now); SIGTERM at `budget` s.

    `watch()`, polled every 5 ms, can also order a SIGKILL.
    """
    started = time.monotonic()
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1 << 16,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
    )
    killed: list[str] = []
    tail: list[str] = []

    def pump_out() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if on_line is not None and on_line(line) and not killed:
                killed.append("kill")
                proc.send_signal(signal.SIGKILL)
        proc.stdout.close()

    def pump_err() -> None:
        assert proc.stderr is not None
        log = log_path.open("w") if log_path else None
        for line in proc.stderr:
            if log:
                log.write(line)
            tail.append(line.rstrip("\n"))
            if len(tail) > 400:
                del tail[:200]
        if log:
            log.close()
        proc.stderr.close()

    readers = [threading.Thread(target=pump_out, daemon=True), threading.Thread(target=pump_err, daemon=True)]
    for reader in readers:
        reader.start()
    timer = None
    if budget is not None:

        def stop() -> None:
            if proc.poll() is None and not killed:
                killed.append("budget")
                proc.send_signal(signal.SIGTERM)

        timer = threading.Timer(budget, stop)
        timer.start()
    code, rss, cpu, watched = _wait(proc, watch)
    if watched and not killed:
        killed.append("kill")
    wall = time.monotonic() - started
    if timer:
        timer.cancel()
    for reader in readers:
        reader.join()
    return ProcResult(code, wall, rss, tail, cpu=cpu, killed=killed[0] if killed else None)


# -- the baseline ---------------------------------------------------------------------------


def iso_to_unix(value: str | int | None) -> int | None:
    """The tap's Transformer turns unix seconds into ISO strings; turn them back."""
    if value is None or isinstance(value, int):
        return value
    return int(datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp())


@dataclass
class TapRun:
    """What one tap-invoiced run emitted."""

    proc: ProcResult
    records: dict[str, int] = field(default_factory=dict)  # RECORD messages per stream
    latest: dict[str, dict[str, int]] = field(default_factory=dict)  # stream -> id -> updated_at
    state: dict[str, Any] | None = None  # the last STATE message's value
    summary: dict[str, Any] = field(default_factory=dict)  # tap_runner's exit line

    @property
    def total(self) -> int:
        return sum(self.records.values())

    @property
    def delivered(self) -> int:
        """Distinct records delivered: each stream's records written to the CSV connector."""
        return sum(s.get("delivered", {}).get("csv", 0) for s in self.report.get("streams", {}).values())

    @property
    def requests(self) -> int | None:
        return self.summary.get("requests")


def run_tap(
    url: str,
    api_key: str,
    *,
    state: dict[str, Any] | None = None,
    keep: bool = True,
    budget: float | None = None,
    kill_when: Callable[[TapRun, dict[str, Any]], bool] | None = None,
    sleep_scale: float | None = None,
    streams: str = "customers,invoices",
    log_path: Path | None = None,
    workdir: Path,
) -> TapRun:
    """Run tap-invoiced via tap_runner.py; `keep` parses every RECORD (else only counts them).

    `kill_when(run, state)` is asked after each STATE message; True SIGKILLs the tap right
    there, so `run.state` is the last state a Singer target would have committed.
    """
    if not TAP_PYTHON.exists():
        raise SystemExit("bench/.venv-tap is missing: run `bash bench/setup_tap.sh` first")
    argv = [str(TAP_PYTHON), str(BENCH / "tap_runner.py"), "--url", url, "--api-key", api_key]
    argv += ["--streams", streams]
    if state is not None:
        state_file = workdir / f"tap-state-{time.monotonic_ns()}.json"
        state_file.write_text(json.dumps(state))
        argv += ["--state", str(state_file)]
    if sleep_scale is not None:
        argv += ["--sleep-scale", str(sleep_scale)]
    run = TapRun(ProcResult(None, 0.0, 0.0, []))
    cut: list[bool] = []

    def on_line(line: str) -> bool:
        if cut:  # killed on the last STATE: what follows was never committed by a target
            return False
        if line.startswith('{"type": "RECORD"'):
            if keep:
                msg = json.loads(line)
                rec = msg["record"]
                stream = msg["stream"]
                run.latest.setdefault(stream, {})[str(rec["id"])] = iso_to_unix(rec.get("updated_at")) or 0
            else:
                head = '{"type": "RECORD", "stream": "'
                stream = line[len(head) : line.index('"', len(head))] if line.startswith(head) else "?"
            run.records[stream] = run.records.get(stream, 0) + 1
        elif line.startswith('{"type": "STATE"'):
            run.state = json.loads(line)["value"]
            if kill_when is not None and kill_when(run, run.state):
                cut.append(True)
                return True
        return False

    run.proc = run_child(argv, on_line=on_line, budget=budget, log_path=log_path)
    for line in reversed(run.proc.stderr_tail):
        if line.startswith(TAP_SUMMARY):
            run.summary = json.loads(line[len(TAP_SUMMARY) :])
            break
    return run


# -- syncd -------------------------------------------------------------------------------------


@dataclass
class SyncdRun:
    proc: ProcResult
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def fetched(self) -> int:
        return sum(s.get("fetched", 0) for s in self.report.get("streams", {}).values())

    @property
    def delivered(self) -> int:
        """Distinct records delivered: each stream's records written to the CSV connector."""
        return sum(s.get("delivered", {}).get("csv", 0) for s in self.report.get("streams", {}).values())

    @property
    def requests(self) -> int | None:
        if "client_requests" in self.report:
            return self.report["client_requests"]
        streams = self.report.get("streams")
        return sum(s.get("requests", 0) for s in streams.values()) if streams else None

    @property
    def ok(self) -> bool:
        return bool(self.report.get("ok")) and self.proc.returncode == 0


def run_syncd(
    url: str,
    api_key: str,
    *,
    store: Path,
    out: Path,
    streams: str = "customers,invoices",
    windows: int | None = None,
    retry_budget: float | None = None,
    retry_attempts: int | None = None,
    kill_when: Callable[[], bool] | None = None,
    budget: float | None = None,
    log_path: Path | None = None,
    ledger: bool = False,
) -> SyncdRun:
    """Run one `run_sync` in a child process (bench/syncd_runner.py).

    `kill_when()` is polled every 5 ms while it runs; True SIGKILLs it.
    """
    argv = [sys.executable, str(BENCH / "syncd_runner.py"), "--url", url, "--api-key", api_key]
    argv += ["--store", str(store), "--out", str(out), "--streams", streams]
    if windows is not None:
        argv += ["--windows", str(windows)]
    if retry_budget is not None:
        argv += ["--retry-budget", str(retry_budget)]
    if retry_attempts is not None:
        argv += ["--retry-attempts", str(retry_attempts)]
    if ledger:
        argv.append("--ledger")
    lines: list[str] = []

    def on_line(line: str) -> bool:
        lines.append(line)
        return False

    proc = run_child(argv, on_line=on_line, budget=budget, watch=kill_when, log_path=log_path)
    run = SyncdRun(proc)
    for line in reversed(lines):
        if line.startswith(SYNCD_SUMMARY):
            run.report = json.loads(line[len(SYNCD_SUMMARY) :])
            break
    return run
