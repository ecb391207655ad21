"""What the terminal shows: the lab's own lines (a line per round, where the results went) and every
warning or error; everything, Flower's and Ray's detail included, goes to the run's `run.log`.
`log.level=debug` shows everything on the terminal too. Used by Hydra's job logging (conf/config.yaml)."""

from __future__ import annotations

import logging

# Loggers whose INFO lines the terminal shows: the entry point and the lab's round recorder.
TERMINAL_LOGGERS = frozenset({"fl_privacy", "fl_privacy.lab.channels.rounds"})
# Warnings about what the lab's configuration does on purpose (run.log keeps them): the lab evaluates the
# global model centrally, so Flower's federated evaluation is often off.
EXPECTED_WARNINGS = ("Federated evaluation will be skipped",)


class TerminalLines(logging.Filter):
    """Passes warnings and errors of any logger (but the `EXPECTED_WARNINGS`) and the INFO lines of
    `TERMINAL_LOGGERS`."""

    verbose = False  # `log.level=debug` (set by `show_everything`)

    def filter(self, record: logging.LogRecord) -> bool:
        if self.verbose or record.name in TERMINAL_LOGGERS:
            return True
        return (record.levelno >= logging.WARNING
                and not any(expected in record.getMessage() for expected in EXPECTED_WARNINGS))


def show_everything() -> None:
    """`log.level=debug`: the terminal shows every line, DEBUG included."""
    TerminalLines.verbose = True
    logging.getLogger().setLevel(logging.DEBUG)
