"""Every key of the messages between the server and the clients, once (strategies and apps import it).

Flower's own keys are used where Flower reads them ("num-examples" weights FedAvg); the lab's keys use
the same kebab-case spelling.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fl_privacy.config.schema import CaptureSettings

# --- the server's train/evaluate config ----------------------------------------------------------------
SERVER_ROUND = "server-round"
ANNOUNCED_ACCURACY = "global-accuracy"      # the latest central accuracy, announced to every client
UPDATE_MODE = "update-mode"                 # a captured round may ask for "fedsgd" or "fedavg"
BATCH_SIZE = "batch-size"                   # ... and for another batch size
EXAMPLES = "examples"                       # ... and for how many examples the update uses

# --- the partition-id query ----------------------------------------------------------------------------
QUERY = "query"
PARTITION_ID = "partition-id"
PARTITION_RECORD = "partition"

# --- a train reply's metrics (what every client announces about its update) ----------------------------
NUM_EXAMPLES = "num-examples"               # Flower's FedAvg weight
TRAIN_LOSS = "train-loss"
TRAIN_ACCURACY = "train-accuracy"
LOCAL_STEPS = "local-steps"
LEARNING_RATE = "lr"
FEDSGD = "fedsgd"                           # 1: the arrays are a gradient, 0: weights
UNIT_WEIGHT = "unit-weight"                 # 1 from every client: the uniform weight of central DP
NUM_CLIENTS = "num-clients"                 # added by the server's aggregation

# --- an evaluate reply's metrics -----------------------------------------------------------------------
EVAL_LOSS = "eval-loss"
EVAL_ACCURACY = "eval-accuracy"

# --- records of a reply --------------------------------------------------------------------------------
ARRAYS = "arrays"
METRICS = "metrics"
CONFIG = "config"
PRIVACY_RECORD = "privacy"                  # a DP client's cumulative privacy spent (not averaged)


@dataclass(frozen=True)
class CaptureSchedule:
    """Which rounds and partition ids to capture (`partitions=None`: every sampled client)."""

    rounds: tuple[int, ...]
    partitions: tuple[int, ...] | None = None
    # Asked of every client in captured rounds (None: the clients' own client.update_mode / batch_size).
    update_mode: str | None = None
    batch_size: int | None = None
    examples: int | None = None

    @classmethod
    def from_settings(cls, capture: CaptureSettings) -> CaptureSchedule:
        """The capturing server's schedule from `strategy.capture`."""
        return cls(tuple(capture.rounds), None if capture.partitions is None else tuple(capture.partitions),
                   capture.update_mode, capture.batch_size, capture.examples)

    def request(self, server_round: int) -> dict[str, str | int]:
        """Train-config entries for `server_round`: a FedSGD probe in captured rounds when configured."""
        if server_round not in self.rounds:
            return {}
        asked = {UPDATE_MODE: self.update_mode, BATCH_SIZE: self.batch_size, EXAMPLES: self.examples}
        return {key: value for key, value in asked.items() if value is not None}

    def covers(self, server_round: int, partition_id: int) -> bool:
        return server_round in self.rounds and (self.partitions is None or partition_id in self.partitions)


def sample_size(num_nodes: int, fraction: float, minimum: int) -> int:
    """How many of `num_nodes` nodes a round samples: the fraction, at least `minimum` (the rule the
    strategies follow and the settings are checked against)."""
    return min(num_nodes, max(int(num_nodes * fraction), minimum))
