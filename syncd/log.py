"""structlog set-up: JSON off a terminal, readable on one; secrets never leave the process."""

from __future__ import annotations

import base64
import contextlib
import logging
import re
import sys
import threading
from collections.abc import Iterable, Mapping, MutableMapping
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote, quote_plus

from syncd.lazy import hidden

# structlog imports rich's tracebacks and pretty-printer (and pygments, attrs) if it can, for
# exceptions shown on a terminal only: off one (a service, a pipe, the benchmark) they were a
# tenth of a start-up's imports, unused. Exceptions are then rendered as plain tracebacks.
_TERMINAL = sys.stderr is not None and sys.stderr.isatty()
with hidden(*(() if _TERMINAL else ("rich", "rich.traceback", "rich.pretty"))):
    import structlog

_SECRET_KEYS = frozenset({"api_key", "token", "authorization", "password", "secret", "auth"})
_secrets: set[str] = set()
_lock = threading.Lock()
_masks: list[re.Pattern[str]] = []  # one pattern matching every registered form
REDACTED = "***"

# An `Authorization` header value wherever it is quoted: `Authorization: Basic xyz`,
# `"authorization": "Bearer xyz"`, `authorization=xyz`.
_AUTH_HEADER = re.compile(
    r"""(?i)(\bauthorization\b["']?\s*[:=]\s*["']?)((?:(?:basic|bearer|token|digest) +)?[^\s"',;}]+)"""
)
# A credential after an auth scheme: `Basic dXNlcjo=`, `Bearer pat-na1-...`.
_AUTH_SCHEME = re.compile(r"(?i)\b(basic|bearer|token|digest)(\s+)([A-Za-z0-9._~+/-]{8,}=*)")
# The password of a URL's user-info: `scheme://user:password@host`.
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s/@:]*):([^\s/@]+)@")


def _encodings(value: str) -> set[str]:
    """The forms a secret takes on the wire: HTTP Basic credentials, URL- and JSON-escaped."""
    forms = {value, quote(value), quote(value, safe=""), quote_plus(value), value.replace("/", "\\/")}
    for raw in (value, f"{value}:", f":{value}"):
        data = raw.encode("utf-8")
        for encoded in (base64.b64encode(data), base64.urlsafe_b64encode(data)):
            text = encoded.decode("ascii")
            # Unpadded too, so the form also matches inside a longer encoding.
            forms.update((text, text.rstrip("=")))
    return {form for form in forms if len(form) >= 4}


def register_secret(value: str | None) -> None:
    """Remember a secret so that it, and its encoded forms, are masked wherever they appear."""
    if value and len(value) >= 4:
        with _lock:
            if value in _secrets:
                return
            _secrets.add(value)
            forms = set().union(*(_encodings(secret) for secret in _secrets))
            # Longest first: a form that contains another is masked whole.
            _masks[:] = [re.compile("|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True)))]


def register_secret_fields(section: Mapping[str, Any]) -> None:
    """Register the string values of secret-named keys (`token`, `api_key`, ...) of a config table."""
    for key, value in section.items():
        if str(key).lower() in _SECRET_KEYS and isinstance(value, str):
            register_secret(value)


def _scheme_credential(match: re.Match[str]) -> str:
    scheme, space, credential = match.groups()
    # Only what looks like a credential: "Basic authentication failed" stays readable.
    looks_encoded = any(c.isdigit() or c in "+/=_-." for c in credential) or any(
        c.isupper() for c in credential[1:]
    )
    return f"{scheme}{space}{REDACTED}" if looks_encoded else match.group(0)


def redact_text(text: str) -> str:
    """Mask every registered secret (and its encodings), auth header values and URL passwords."""
    for mask in _masks[:1]:
        text = mask.sub(REDACTED, text)
    text = _AUTH_HEADER.sub(lambda m: m.group(1) + REDACTED, text)
    text = _AUTH_SCHEME.sub(_scheme_credential, text)
    if "@" in text:
        text = _URL_PASSWORD.sub(lambda m: f"{m.group(1)}:{REDACTED}@", text)
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


def configure(
    *,
    json: bool | None = None,
    level: str = "info",
    stream: TextIO | None = None,
    logfile: Path | None = None,
    console_level: str | None = None,
) -> None:
    """Configure structlog once per process; `json=None` picks JSON unless on a terminal.

    With `logfile`, every event at `level` or above is appended there as a JSON line, and
    only those at `console_level` or above (and not held by a live view) reach `stream`.
    """
    out = stream or sys.stderr
    use_json = (not out.isatty()) if json is None else json
    renderer: Any = structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer()
    if logfile is not None or console_level is not None:
        renderer = _Split(renderer, logfile, console_level or level)
        level = min(level, console_level or level, key=_level_number)
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


def _level_number(level: str) -> int:
    return int(logging.getLevelName(level.upper()))


class _Routing:
    held: frozenset[str] = frozenset()


_routing = _Routing()


def hold(events: Iterable[str]) -> None:
    """Keep these events off the terminal (a live view shows them); they still reach the log file."""
    _routing.held = frozenset(events)


class _Split:
    """Final processor: JSON lines to the log file; the terminal gets the events at its level."""

    def __init__(self, renderer: Any, logfile: Path | None, console_level: str) -> None:
        self.renderer = renderer
        self.console_level = _level_number(console_level)
        self.json = structlog.processors.JSONRenderer()
        self.file = logfile
        if logfile is not None:
            logfile.parent.mkdir(parents=True, exist_ok=True)
        self.lock = threading.Lock()

    def __call__(self, logger: Any, name: str, event: MutableMapping[str, Any]) -> str:
        if self.file is not None:
            line = str(self.json(logger, name, dict(event)))
            # Opened per line: no handle outlives a reconfiguration, and a rotated file is followed.
            with self.lock, contextlib.suppress(OSError), self.file.open("a", encoding="utf-8") as fh:
                fh.write(line + "\n")  # a full disk must not stop a sync
        number = _level_number(str(event.get("level", "info")))
        if number < self.console_level or (self.file is not None and event.get("event") in _routing.held):
            raise structlog.DropEvent
        return str(self.renderer(logger, name, event))


class _StderrLoggerFactory:
    """A structlog logger factory bound to the current `sys.stderr`, looked up per logger."""

    def __call__(self, *args: Any) -> structlog.PrintLogger:
        return structlog.PrintLogger(file=sys.stderr)
