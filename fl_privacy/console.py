"""What the terminal shows: the lab's own lines (a line per round, where the results went) and every
warning or error; everything, Flower's and Ray's detail included, goes to the run's `run.log`.
`log.level=debug` shows everything on the terminal too. Used by Hydra's job logging (conf/config.yaml)."""

from __future__ import annotations

import logging

# Loggers whose INFO lines the terminal shows: the entry point and the lab's round recorder.
TERMINAL_LOGGERS = frozenset({"fl_privacy", "fl_privacy.lab.rounds"})


class TerminalLines(logging.Filter):
    """Passes warnings and errors of any logger and the INFO lines of `TERMINAL_LOGGERS`."""

    verbose = False  # `log.level=debug` (set by `show_everything`)

    def filter(self, record: logging.LogRecord) -> bool:
        return self.verbose or record.levelno >= logging.WARNING or record.name in TERMINAL_LOGGERS


def show_everything() -> None:
    """`log.level=debug`: the terminal shows every line, DEBUG included."""
    TerminalLines.verbose = True
    logging.getLogger().setLevel(logging.DEBUG)
