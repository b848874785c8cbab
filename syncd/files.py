"""Replacing a file whole: a reader sees the old file or the new one, never half of either."""

from __future__ import annotations

import os
import re
import secrets
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any

# `.NAME.PID.RANDOM.tmp` beside the file it replaces; the pid says whether its writer lives.
_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp$")
# Before the pid was in the name (tempfile.mkstemp's 8 characters).
_OLD_TEMP = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp$")
# A temp file untouched this long whose writer is gone is left over from a kill.
STALE_AFTER = 60.0
# Untouched this long, it is stale whoever wrote it (an old name, a pid since reused).
ABANDONED_AFTER = 3600.0


def _create_temp(path: Path) -> tuple[int, Path]:
    while True:
        tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        try:
            # 0o666 less the umask, as any new file; mkstemp would force 0600.
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666), tmp
        except FileExistsError:
            continue


@contextmanager
def replaced(path: Path, mode: str = "w", **open_args: Any) -> Iterator[IO[Any]]:
    """Write the new content of `path` into the yielded file; on success it replaces `path`.

    The temp file sits beside `path` (same file system, so the rename is atomic), is fsynced
    before the rename, and the folder after it, so a crash leaves the old file or the new one.
    The new file keeps the mode of the one it replaces (a `chmod 644` stays), else the umask
    applies. On any error the temp file is removed and `path` is left as it was.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temp(path)
    try:
        with os.fdopen(fd, mode, **open_args) as fh:
            with suppress(FileNotFoundError):
                os.chmod(fh.fileno(), stat.S_IMODE(os.stat(path).st_mode))
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        if exc.filename is None:  # a full disk says so without naming the file: name it
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, under another user
        return True
    return True


def sweep_temp_files(folder: Path, name: str = "*", *, now: float | None = None) -> list[Path]:
    """Remove temp files `replaced` left behind for files named like `name` (a glob) in `folder`.

    A temp file is removed when its writer is dead and it was not modified for STALE_AFTER
    seconds, or when nobody modified it for ABANDONED_AFTER seconds; so a render running
    in another process right now (which keeps writing) is never disturbed. Returns those removed.
    """
    now = time.time() if now is None else now
    removed = []
    for tmp in folder.glob(f".{name}.*.tmp"):
        match = _TEMP.match(tmp.name)
        if match is None and _OLD_TEMP.match(tmp.name) is None:
            continue
        try:
            idle = now - tmp.lstat().st_mtime
        except FileNotFoundError:
            continue
        dead = match is not None and not _alive(int(match["pid"]))
        if (dead and idle >= STALE_AFTER) or idle >= ABANDONED_AFTER:
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed
