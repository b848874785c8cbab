"""structlog set-up: JSON off a terminal, readable on one; secrets never leave the process."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

_SECRET_KEYS = frozenset({"api_key", "token", "authorization", "password", "secret", "auth"})
_secrets: set[str] = set()
_lock = threading.Lock()
REDACTED = "***"


def register_secret(value: str | None) -> None:
    """Remember a secret value so that it is masked wherever it appears in a log event."""
    if value and len(value) >= 4:
        with _lock:
            _secrets.add(value)


def redact_text(text: str) -> str:
    """Mask every registered secret inside `text`."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def _redact(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: REDACTED if str(k).lower() in _SECRET_KEYS else _redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(v) for v in value]
    return value


def redact_secrets(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: mask secret-named keys and registered secret values."""
    for key in list(event):
        if key.lower() in _SECRET_KEYS:
            event[key] = REDACTED
        else:
            event[key] = _redact(event[key])
    return event


def configure(*, json: bool | None = None, level: str = "info", stream: TextIO | None = None) -> None:
    """Configure structlog once per process; `json=None` picks JSON unless on a terminal."""
    out = stream or sys.stderr
    use_json = (not out.isatty()) if json is None else json
    renderer: Any = structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_secrets,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        # With no stream given, each logger writes to whatever sys.stderr is when it is made,
        # so a process that swaps stderr (a test runner, a daemon's redirect) is followed.
        logger_factory=structlog.PrintLoggerFactory(file=stream) if stream else _StderrLoggerFactory(),
        cache_logger_on_first_use=False,
    )


class _StderrLoggerFactory:
    """A structlog logger factory bound to the current `sys.stderr`, looked up per logger."""

    def __call__(self, *args: Any) -> structlog.PrintLogger:
        return structlog.PrintLogger(file=sys.stderr)
