"""What the command line shows on a terminal: the live view, the log file, -v and -q."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the CLI imports this module for every command, --help included
    from syncd.config import Settings

LOG_FILE = "syncd.log"


def on_terminal() -> bool:
    """Whether a person watches stderr (the live view and the log file apply)."""
    return sys.stderr.isatty()


@dataclass
class Output:
    """How much a command prints; set once from `-v`/`-q` by the CLI callback."""

    verbose: bool = False
    quiet: bool = False
    logfile: Path | None = None  # where info lines went, when not to the terminal

    @property
    def live(self) -> bool:
        """Draw the live progress view: on a terminal, unless quiet."""
        return not self.quiet and on_terminal()


def configure_logging(settings: Settings, output: Output) -> None:
    """Route log lines: on a terminal, below `warning` to a JSON-lines file beside the config.

    Off a terminal (pipes, systemd, containers) the JSON log on stderr is as it always was;
    `-q` keeps only errors, `-v` keeps everything on the terminal and writes no file.
    """
    from syncd import log

    output.logfile = None
    level = settings.log_level
    if not on_terminal():
        log.configure(level="error" if output.quiet else level)
        return
    if output.verbose:
        log.configure(json=False, level=level)
        return
    output.logfile = settings.resolve(LOG_FILE).absolute()
    if not os.access(output.logfile.parent, os.W_OK):
        output.logfile = None  # nowhere to put them: info lines stay on the terminal
        log.configure(json=False, level=level, console_level="error" if output.quiet else level)
        return
    log.configure(
        json=False, level=level, logfile=output.logfile, console_level="error" if output.quiet else "warning"
    )
