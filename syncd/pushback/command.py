"""`syncd push`: run the push-back once and print what happened, every rejection with its reason."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from syncd.config import Settings
from syncd.pushback.push import OUTCOMES, PushReport
from syncd.pushback.run import run_push

EXIT_OK, EXIT_FAILED, EXIT_REJECTED = 0, 1, 3
GONE = "changed: review: no longer in its source"
HOLD_HELP = (
    "A held payment waits for you: `syncd errors retry ID` posts it anyway (still validated), "
    "`syncd errors ignore ID` drops it until its content changes."
)
CORRECT_HELP = (
    "To correct a payment syncd already posted: change or delete its transaction in Invoiced yourself "
    "(syncd never changes a posted payment), then fix your books or inbox; a corrected entry that "
    "syncd holds as `changed: review` is posted by `syncd errors retry ID` or dropped by `syncd errors ignore ID`."
)

_LABELS = {
    "posted": "posted",
    "adopted": "adopted (already in Invoiced)",
    "already_posted": "already posted earlier",
    "rejected": "rejected",
    "held": "held for review (not posted)",
    "changed": "changed after posting (not reposted)",
    "dismissed": "dismissed (syncd errors ignore)",
    "failed": "failed (retried next run)",
    "deferred": "not tried (run stopped)",
}


def exit_code(report: PushReport) -> int:
    """1 when a payment failed or the run stopped (retry later), 3 when some were rejected or held, else 0."""
    if not report.ok:
        return EXIT_FAILED
    return EXIT_REJECTED if report.rejections or report.held else EXIT_OK


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
    if report.held:
        table = Table(title=f"held payments ({len(report.held)}): possibly in Invoiced already")
        for col in ("external id", "where", "reason"):
            table.add_column(col, overflow="fold")
        for external_id, origin, reason in report.held:
            table.add_row(escape(external_id), escape(origin or "-"), escape(reason))
        console.print(table)
        console.print(HOLD_HELP, highlight=False)
    # A payment held as gone from its source was never posted: its reason says what to do.
    corrected = [r for _, _, r in report.held if r.startswith("changed: review") and GONE not in r]
    if report.counts["changed"] or corrected:
        console.print(CORRECT_HELP, highlight=False)
    for path in report.rejects_files:
        console.print(f"rejected rows written to {escape(str(path))}", highlight=False)
    for warning in report.warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
    if report.error:
        console.print(f"[bold red]stopped:[/] {escape(report.error)}", highlight=False)


def run_push_command(settings: Settings, console: Console, *, live: bool = False, wait: bool = False) -> int:
    """Run the push-back once, print the summary, return the exit code (see `exit_code`).

    With `live`, a progress view on stderr shows the run and its waits (429s, retries).
    Raises LeaseHeld (exit 4) when another push holds the store's push lease and `wait` is off.
    """
    if not settings.pushback.enabled:
        console.print(escape("push-back is disabled ([pushback] enabled = false): nothing done"))
        return EXIT_OK
    from syncd.engine import connect
    from syncd.progress import Progress

    client = connect(settings)
    try:
        with Progress(enabled=live, label="pushing payments to Invoiced") as view:
            client.on_wait = view.waiting
            report = run_push(settings, client=client, wait=wait)
    finally:
        client.close()
    print_report(report, console)
    return exit_code(report)
