"""One line for any failure a user can meet: a full disk, a damaged store, or a bug.

The command line prints `describe(exc)` instead of a traceback; the engine records it as a
stream's error when a page cannot be written (FAILURES).
"""

from __future__ import annotations

import errno
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from syncd.errors import SyncdError
from syncd.log import redact_text

# What writing a page can raise besides our own errors: the file system and the store's driver.
FAILURES: tuple[type[BaseException], ...] = (SyncdError, OSError, SQLAlchemyError)

_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def _os(exc: OSError) -> str:
    reason = exc.strerror or str(exc) or type(exc).__name__
    if exc.filename is None:
        return reason
    verb = "cannot write" if exc.errno in _FULL or exc.errno in (errno.EROFS, errno.EACCES) else "cannot use"
    return f"{verb} {exc.filename}: {reason}"


def store_name(config: Path | None) -> str | None:
    """The configured store's URL without a password, or None when the configuration cannot say."""
    from syncd.config import load_settings
    from syncd.store.database import redact_url

    try:
        return redact_url(load_settings(config).store_url())
    except Exception:  # naming the store is a courtesy: never fail while reporting a failure
        return None


def describe(exc: BaseException, *, store: str | None = None) -> str:
    """A single line saying what failed, without a traceback or a secret; `store` names the store."""
    if isinstance(exc, SyncdError):
        text = str(exc)
    elif isinstance(exc, OSError):
        text = _os(exc)
    elif isinstance(exc, SQLAlchemyError):
        # The driver's own words: SQLAlchemy's wrapper adds the SQL and its parameters (data).
        text = f"checkpoint store{' ' + store if store else ''}: {getattr(exc, 'orig', None) or type(exc).__name__}"
    else:
        text = f"unexpected {type(exc).__name__}: {exc} (a bug: please report it)"
    return " ".join(redact_text(text).split())
