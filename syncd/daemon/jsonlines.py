"""Every line the daemon writes to stderr is one JSON event, up to its last.

A log collector (journald, docker) reads the daemon's stderr line by line; a plain-text
warning from a library, a thread's traceback or a final message breaks that. `install()`
routes those through structlog; `stopped()` writes the last event with the exit status.
"""

from __future__ import annotations

import logging
import sys
import threading
import warnings
from types import TracebackType
from typing import TextIO

import structlog

log = structlog.get_logger("syncd.daemon")


class _ToStructlog(logging.Handler):
    """Library log records (httpx, SQLAlchemy, ...) as structlog events."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            structlog.get_logger(record.name).log(record.levelno, "library.log", message=record.getMessage())
        except Exception:  # a log line must never take the daemon down
            self.handleError(record)


def _thread_crashed(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread is not None else "?"
    exc_info = (args.exc_type, args.exc_value or args.exc_type(), args.exc_traceback)
    log.error("thread.crashed", thread=name, exc_info=exc_info)


def _crashed(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    log.error("daemon.crashed", exc_info=(exc_type, exc, tb))


def _warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    log.warning("python.warning", category=category.__name__, message=str(message), at=f"{filename}:{lineno}")


def install() -> None:
    """Send library logs, warnings and uncaught exceptions to the JSON log, not raw stderr."""
    root = logging.getLogger()
    if not any(isinstance(h, _ToStructlog) for h in root.handlers):
        root.addHandler(_ToStructlog(logging.WARNING))
    threading.excepthook = _thread_crashed
    sys.excepthook = _crashed
    warnings.showwarning = _warning


def stopped(code: int, reason: str | None = None) -> None:
    """The daemon's last event: it carries the process exit status."""
    event = log.info if code == 0 else log.error
    event("daemon.stopped", exit_code=code, reason=reason)
    sys.stderr.flush()
