"""`syncd push`: run the push-back once and print what happened, every rejection with its reason."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from syncd.config import Settings
from syncd.pushback.push import OUTCOMES, PushReport
from syncd.pushback.run import run_push

EXIT_OK, EXIT_FAILED, EXIT_REJECTED = 0, 1, 3

_LABELS = {
    "posted": "posted",
    "adopted": "adopted (already in Invoiced)",
    "already_posted": "already posted earlier",
    "rejected": "rejected",
    "changed": "changed after posting (not reposted)",
    "failed": "failed (retried next run)",
    "deferred": "not tried (run stopped)",
}


def exit_code(report: PushReport) -> int:
    """1 when a payment failed or the run stopped (retry later), 3 when some were rejected, else 0."""
    if not report.ok:
        return EXIT_FAILED
    return EXIT_REJECTED if report.rejections else EXIT_OK


def print_report(report: PushReport, console: Console) -> None:
    """The summary table, every rejection with where it was read and why, and any warning."""
    summary = Table(title="push-back")
    summary.add_column("outcome")
    summary.add_column("payments", justify="right")
    for outcome in OUTCOMES:
        if report.counts[outcome] or outcome in ("posted", "rejected", "failed"):
            summary.add_row(_LABELS[outcome], str(report.counts[outcome]))
    console.print(summary)
    if report.rejections:
        table = Table(title=f"rejected payments ({len(report.rejections)})")
        for col in ("external id", "where", "reason"):
            table.add_column(col, overflow="fold")
        for external_id, origin, reason in report.rejections:
            # Reasons quote user data and config keys such as [pushback]: never rich markup.
            table.add_row(escape(external_id or "-"), escape(origin or "-"), escape(reason))
        console.print(table)
    for path in report.rejects_files:
        console.print(f"rejected rows written to {escape(str(path))}", highlight=False)
    for warning in report.warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
    if report.error:
        console.print(f"[bold red]stopped:[/] {escape(report.error)}", highlight=False)


def run_push_command(settings: Settings, console: Console, *, wait: bool = False) -> int:
    """Run the push-back once, print the summary, return the exit code (see `exit_code`).
    Raises LeaseHeld (exit 4) when another push holds the store's push lease and `wait` is off."""
    if not settings.pushback.enabled:
        console.print(escape("push-back is disabled ([pushback] enabled = false): nothing done"))
        return EXIT_OK
    report = run_push(settings, wait=wait)
    print_report(report, console)
    return exit_code(report)
