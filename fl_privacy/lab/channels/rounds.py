"""The lab's listener for each round: adds its monitors' verdicts, writes the line to metrics.jsonl,
logs one line and advances the progress bar."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from fl_privacy.privacy_record import PrivacySummary
from fl_privacy.progress import RoundBar
from fl_privacy.results import MetricsLog

if TYPE_CHECKING:
    from fl_privacy.lab.channels.tracking import Tracker

log = logging.getLogger(__name__)

class RoundMonitor(Protocol):
    """A lab monitor: the round's numbers (empty: nothing to report), and its state for checkpoints."""

    def __call__(self, server_round: int) -> dict: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class RoundRecorder:
    """Receives each round's record from the ServerApp (round 0 = after warm-up)."""

    def __init__(self, metrics_log: MetricsLog, monitors: Mapping[str, RoundMonitor], num_rounds: int,
                 tracker: Tracker | None = None) -> None:
        self.metrics_log = metrics_log
        self.tracker = tracker  # tracking=tensorboard|mlflow: gets every record after metrics.jsonl
        self.monitors = monitors
        self.num_rounds = num_rounds
        self.bar = RoundBar()
        self._started = time.monotonic()

    def _headlines(self, record: dict) -> list[str]:
        """For the round's terminal line: each monitor's first number (e.g. the GAN attack's victim share),
        the privacy spent, and how many client replies failed."""
        parts = [f"{name} {key} {value:.3f}" for name in self.monitors if record.get(name)
                 for key, value in list(record[name].items())[:1]]
        if (epsilon := PrivacySummary.from_round(record, math.nan).max_epsilon) is not None:
            parts.append(f"ε {epsilon:.2f}")
        if failed := sum(len(f) for f in record.get("failures", {}).values()):
            parts.append(f"{failed} failed replies")
        return parts

    def monitors_state(self) -> dict[str, Any]:
        return {name: monitor.state_dict() for name, monitor in self.monitors.items()}

    def load_monitors_state(self, state: dict[str, Any]) -> None:
        for name, monitor in self.monitors.items():
            monitor.load_state_dict(state[name])

    def __call__(self, server_round: int, record: dict) -> None:
        for name, monitor in self.monitors.items():
            if found := monitor(server_round):
                record[name] = found
        record["seconds"] = time.monotonic() - self._started
        self._started = time.monotonic()
        accuracy = record["central"]["accuracy"]
        log.info("round %d/%d: central accuracy %.4f%s (%.1f s)", server_round, self.num_rounds, accuracy,
                 "".join(f", {part}" for part in self._headlines(record)), record["seconds"])
        self.bar.update(server_round, accuracy=accuracy)
        self.metrics_log.append(record)
        if self.tracker is not None:
            self.tracker.log_round(server_round, record)
