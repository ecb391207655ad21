"""FedAvg with a centralized warm-up of the global model before round 1 (Zhao et al. 2018)."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable

from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg, Result, Strategy
from flwr.serverapp.strategy.strategy_utils import aggregate_metricrecords
from torch import nn

from fl_privacy.data.datasets import ImageDataset
from fl_privacy.training import TrainSettings, train
from strategies.partition_sampling import (
    discover_partitions,
    in_partition_order,
    sample_by_partition,
)

log = logging.getLogger(__name__)

RoundLogger = Callable[[dict], None]
RoundProbe = Callable[[int], dict]
ANNOUNCED_ACCURACY = "global-accuracy"
# The reply record in which a DP client reports its cumulative privacy spent (not averaged: Flower's
# FedAvg needs the same metric keys from every client, honest or private).
PRIVACY_RECORD = "privacy"


def aggregate_with_counts(records: list[RecordDict], weighting_key: str) -> MetricRecord:
    """Flower's weighted average of client metrics, total examples and weights, and the client count."""
    metrics = aggregate_metricrecords(records, weighting_key)
    for key in {weighting_key, "num-examples"}:
        metrics[key] = sum(int(next(iter(r.metric_records.values()))[key]) for r in records)
    metrics["num-clients"] = len(records)
    return metrics


class FedAvgWithWarmup(FedAvg):
    """FedAvg whose initial model is first trained centrally on the server's warm-up set.

    Clients are sampled by partition id with `seed` and their replies aggregated in partition
    order, so runs are reproducible. After each round (round 0 = after warm-up) the central
    evaluation, the aggregated client metrics, each of `round_probes`' results (under its name;
    e.g. an attack monitor) and the round's seconds go to `round_logger`. The latest central
    accuracy is announced to clients in the train config as "global-accuracy".
    """

    def __init__(self, *, model_fn: Callable[[], nn.Module], num_nodes: int, seed: int,
                 warmup_data: ImageDataset | None = None, warmup: TrainSettings | None = None,
                 round_logger: RoundLogger | None = None,
                 round_probes: dict[str, RoundProbe] | None = None, **fedavg_kwargs) -> None:
        fedavg_kwargs.setdefault("min_available_nodes", num_nodes)
        fedavg_kwargs.setdefault("min_train_nodes", 1)
        fedavg_kwargs.setdefault("min_evaluate_nodes", 0)
        fedavg_kwargs.setdefault("train_metrics_aggr_fn", aggregate_with_counts)
        fedavg_kwargs.setdefault("evaluate_metrics_aggr_fn", aggregate_with_counts)
        super().__init__(**fedavg_kwargs)
        self.model_fn = model_fn
        self.num_nodes = num_nodes
        self.seed = seed
        self.warmup_data = warmup_data
        self.warmup = warmup
        self.round_logger = round_logger
        self.round_probes = round_probes or {}
        self.announced_accuracy: float | None = None
        self.partition_of: dict[int, int] = {}
        self.client_epsilons: dict[int, float] = {}
        # A strategy wrapper (e.g. Flower's central DP) that runs the rounds around this strategy.
        self.outer: Strategy | None = None
        self._round_metrics: dict[str, dict] = {}
        self._round_started = time.monotonic()

    # --- warm-up -----------------------------------------------------------------------------
    def warm_up(self, arrays: ArrayRecord) -> ArrayRecord:
        """Train the model centrally on the warm-up set; returns the new global weights."""
        if self.warmup is None or self.warmup_data is None or len(self.warmup_data) == 0 \
                or self.warmup.epochs == 0:
            return arrays
        model = self.model_fn()
        model.load_state_dict(arrays.to_torch_state_dict())
        stats = train(model, self.warmup_data, self.warmup, seed=self.seed)
        log.info("warm-up: %d epochs on %d examples, train accuracy %.3f",
                 self.warmup.epochs, stats.num_examples, stats.accuracy)
        return ArrayRecord(model.state_dict())

    def start(self, grid: Grid, initial_arrays: ArrayRecord, num_rounds: int = 3,
              timeout: float = 3600, train_config: ConfigRecord | None = None,
              evaluate_config: ConfigRecord | None = None,
              evaluate_fn: Callable[[int, ArrayRecord], MetricRecord | None] | None = None,
              ) -> Result:
        """Learn the node -> partition map, warm up, then run Flower's round loop (through `outer`,
        a wrapper such as central DP, when one is set)."""
        self.partition_of = discover_partitions(grid, self.num_nodes, timeout)
        self._round_started = time.monotonic()
        arrays = self.warm_up(initial_arrays)
        recording = self._recording(evaluate_fn, num_rounds)
        if self.outer is not None:
            return self.outer.start(grid, arrays, num_rounds, timeout, train_config, evaluate_config,
                                    evaluate_fn=recording)
        return super().start(grid, arrays, num_rounds, timeout, train_config, evaluate_config,
                             evaluate_fn=recording)

    # --- sampling and aggregation --------------------------------------------------------------
    def _messages(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                  fraction: float, minimum: int, message_type: str) -> Iterable[Message]:
        if fraction == 0.0:
            return []
        nodes = sample_by_partition(self.partition_of, fraction, minimum, self.seed, server_round)
        config["server-round"] = server_round
        if self.announced_accuracy is not None:
            config[ANNOUNCED_ACCURACY] = self.announced_accuracy
        record = RecordDict({self.arrayrecord_key: arrays, self.configrecord_key: config})
        return self._construct_messages(record, nodes, message_type)

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                        grid: Grid) -> Iterable[Message]:
        """Sample clients by partition id (seeded) instead of by random node id."""
        return self._messages(server_round, arrays, config, self.fraction_train,
                              self.min_train_nodes, MessageType.TRAIN)

    def configure_evaluate(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                           grid: Grid) -> Iterable[Message]:
        return self._messages(server_round, arrays, config, self.fraction_evaluate,
                              self.min_evaluate_nodes, MessageType.EVALUATE)

    def aggregate_train(self, server_round: int, replies: Iterable[Message]
                        ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """FedAvg over the replies taken in partition order (reproducible float sums)."""
        replies = in_partition_order(replies, self.partition_of)
        self._note_client_epsilons(replies)
        arrays, metrics = super().aggregate_train(server_round, replies)
        self._round_metrics["train"] = dict(metrics) if metrics else {}
        return arrays, metrics

    def _note_client_epsilons(self, replies: list[Message]) -> None:
        """Remember the cumulative ε each DP client reported (its latest reply counts)."""
        for reply in replies:
            if reply.has_error():
                continue
            if PRIVACY_RECORD in reply.content.config_records:
                partition = self.partition_of.get(reply.metadata.src_node_id, -1)
                self.client_epsilons[partition] = float(reply.content[PRIVACY_RECORD]["epsilon"])

    def privacy_record(self) -> dict:
        """ε so far: each DP client's latest cumulative ε and the maximum (empty without DP clients)."""
        if not self.client_epsilons:
            return {}
        return {"per_client": {str(p): e for p, e in sorted(self.client_epsilons.items())},
                "max_epsilon": max(self.client_epsilons.values())}

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]
                           ) -> MetricRecord | None:
        metrics = super().aggregate_evaluate(
            server_round, in_partition_order(replies, self.partition_of))
        self._round_metrics["evaluate"] = dict(metrics) if metrics else {}
        return metrics

    # --- per-round records ---------------------------------------------------------------------
    def _recording(self, evaluate_fn, num_rounds: int):
        """Wrap the central evaluation so each round's record is emitted right after it."""

        def evaluate_and_record(server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
            central = evaluate_fn(server_round, arrays) if evaluate_fn else None
            record = {"round": server_round,
                      "central": dict(central) if central else {},
                      "train": self._round_metrics.pop("train", {}),
                      "evaluate": self._round_metrics.pop("evaluate", {})}
            if privacy := self.privacy_record():
                record["privacy"] = privacy
            for name, probe in self.round_probes.items():
                if probed := probe(server_round):
                    record[name] = probed
            record["seconds"] = time.monotonic() - self._round_started
            self._round_started = time.monotonic()
            accuracy = record["central"].get("accuracy", math.nan)
            if "accuracy" in record["central"]:
                self.announced_accuracy = float(accuracy)
            log.info("round %d/%d: central accuracy %.4f (%.1f s)", server_round, num_rounds,
                     accuracy, record["seconds"])
            if self.round_logger:
                self.round_logger(record)
            return central

        return evaluate_and_record
