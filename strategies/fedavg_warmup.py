"""FedAvg with a centralized warm-up of the global model before round 1 (Zhao et al. 2018)."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Iterable
from typing import cast

from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.common.constant import ErrorCode
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg
from flwr.serverapp.strategy.strategy_utils import aggregate_metricrecords
from torch import nn

from fl_privacy.data.images import ImageDataset
from fl_privacy.errors import RoundFailed
from fl_privacy.privacy_record import CLIENTS_SECTION, ClientPrivacy, ClientsPrivacy
from fl_privacy.protocol import (
    ANNOUNCED_ACCURACY,
    NUM_CLIENTS,
    NUM_EXAMPLES,
    PRIVACY_RECORD,
    SERVER_ROUND,
)
from fl_privacy.training import TrainSettings, train
from strategies.partition_sampling import (
    discover_partitions,
    in_partition_order,
    sample_by_partition,
)

log = logging.getLogger(__name__)


def aggregate_with_counts(records: list[RecordDict], weighting_key: str) -> MetricRecord:
    """Flower's weighted average of client metrics, total examples and weights, and the client count.
    A metric some clients send as NaN (a `dp` client's train loss: not reported) is averaged over the
    others (NaN when no client reports it)."""
    metrics = aggregate_metricrecords(records, weighting_key)
    rows = [next(iter(r.metric_records.values())) for r in records]
    for key in {key for row in rows for key, value in row.items() if value != value}:  # NaN != NaN
        held = [(float(cast(float, row[key])), float(cast(float, row[weighting_key]))) for row in rows
                if row[key] == row[key]]
        total = sum(weight for _, weight in held)
        metrics[key] = sum(value * weight for value, weight in held) / total if total else math.nan
    for key in {weighting_key, NUM_EXAMPLES}:
        metrics[key] = sum(int(cast(int, next(iter(r.metric_records.values()))[key])) for r in records)
    metrics[NUM_CLIENTS] = len(records)
    return metrics


RAISED = ErrorCode.CLIENT_APP_RAISED_EXCEPTION  # the ClientApp's own exception (not a lost process)
ANSI_CODES = re.compile(r"\x1b\[[0-9;]*m")


def error_line(reason: str | None) -> str:
    """The last line of an error reply's text, without terminal colours (Flower's reason for a raising
    ClientApp is Ray's whole traceback; its last line names the exception)."""
    lines = [line.strip() for line in ANSI_CODES.sub("", reason or "").splitlines() if line.strip()]
    return lines[-1].rstrip("'>") if lines else "no reason given"


def reply_failures(replies: list[Message], sampled: list[int], partition_of: dict[int, int]) -> list[dict]:
    """Each sampled node that did not reply successfully: its partition id and the error's last line (a
    node that sent no reply at all counts as failed)."""
    failures = [{"partition": partition_of.get(reply.metadata.src_node_id, -1),
                 "error": error_line(reply.error.reason), "raised": reply.error.code == RAISED}
                for reply in replies if reply.has_error()]
    replied = {reply.metadata.src_node_id for reply in replies}
    failures += [{"partition": partition_of.get(node, -1), "error": "no reply", "raised": False}
                 for node in sampled if node not in replied]
    return sorted(failures, key=lambda failure: failure["partition"])


class FedAvgWithWarmup(FedAvg):
    """FedAvg whose initial model is first trained centrally on the server's warm-up set.

    Clients are sampled by partition id with `seed` and their replies aggregated in partition order, so
    runs are reproducible: call `discover` once before `start`. The accuracy passed to `announce` is sent to
    clients in the train config (`protocol.ANNOUNCED_ACCURACY`). Each round's aggregated client metrics
    wait in `take_round_metrics` for the caller that records rounds, with the round's failed replies
    (partition id, error, whether the ClientApp raised it); a training round raises `RoundFailed` when a
    client's process died or fewer than `min_train_replies` replies succeeded.
    """

    def __init__(self, *, model_fn: Callable[[], nn.Module], num_nodes: int, seed: int,
                 warmup_data: ImageDataset | None = None, warmup: TrainSettings | None = None,
                 min_train_replies: int = 1, **fedavg_kwargs) -> None:
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
        self.min_train_replies = min_train_replies
        self.announced_accuracy: float | None = None
        self.rounds_done = 0  # rounds a resumed run completed before this process started
        self.partition_of: dict[int, int] = {}
        self.client_epsilons: dict[int, float] = {}
        self.client_accountant = "rdp"
        self.client_stops: dict[int, int] = {}
        self._round_metrics: dict[str, dict] = {}
        self._sampled: dict[str, list[int]] = {}

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

    def discover(self, grid: Grid, timeout: float = 600.0) -> None:
        """Learn the node -> partition map (call once before `start`; sampling and ordering use it)."""
        self.partition_of = discover_partitions(grid, self.num_nodes, timeout)

    def announce(self, accuracy: float) -> None:
        """The central accuracy to announce to clients in the next rounds' train config."""
        self.announced_accuracy = accuracy

    # --- sampling and aggregation --------------------------------------------------------------
    def _messages(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                  fraction: float, minimum: int, message_type: str) -> Iterable[Message]:
        if fraction == 0.0:
            return []
        nodes = sample_by_partition(self.partition_of, fraction, minimum, self.seed, server_round)
        self._sampled[message_type] = nodes
        config[SERVER_ROUND] = server_round
        if self.announced_accuracy is not None:
            config[ANNOUNCED_ACCURACY] = self.announced_accuracy
        record = RecordDict({self.arrayrecord_key: arrays, self.configrecord_key: config})
        return self._construct_messages(record, nodes, message_type)

    # Flower counts rounds from 1 in every `start`; a resumed run adds the rounds it had done before.
    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                        grid: Grid) -> Iterable[Message]:
        return self.configure_round(self.rounds_done + server_round, arrays, config)

    def configure_evaluate(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                           grid: Grid) -> Iterable[Message]:
        return self._messages(self.rounds_done + server_round, arrays, config, self.fraction_evaluate,
                              self.min_evaluate_nodes, MessageType.EVALUATE)

    def aggregate_train(self, server_round: int, replies: Iterable[Message]
                        ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        return self.aggregate_round(self.rounds_done + server_round, replies)

    def configure_round(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord
                        ) -> Iterable[Message]:
        """Sample clients by partition id (seeded) instead of by random node id (`server_round` counts
        the run's rounds, resumed ones included)."""
        return self._messages(server_round, arrays, config, self.fraction_train,
                              self.min_train_nodes, MessageType.TRAIN)

    def aggregate_round(self, server_round: int, replies: Iterable[Message]
                        ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """FedAvg over the replies taken in partition order (reproducible float sums)."""
        replies = in_partition_order(replies, self.partition_of)
        self._note_failures(server_round, "train", replies)
        self._check_round(server_round, replies, self._round_metrics["failures"]["train"])
        self._note_client_epsilons(replies, server_round)
        arrays, metrics = super().aggregate_train(server_round, self._weighted(replies))
        self._round_metrics["train"] = dict(metrics) if metrics else {}
        return arrays, metrics

    def set_aside(self, replies: list[Message]) -> None:
        """Replies a wrapper (central DP) keeps out of the aggregate on purpose: they did reply, so they are
        not counted as failures."""
        aside = {reply.metadata.src_node_id for reply in replies}
        sampled = self._sampled.get(MessageType.TRAIN, [])
        self._sampled[MessageType.TRAIN] = [node for node in sampled if node not in aside]

    def _weighted(self, replies: list[Message]) -> list[Message]:
        """Replies without weight left out (a DP client whose budget is spent sends weight 0): they add
        nothing to the average, and without any weighted reply the global model stays as it is."""
        return [reply for reply in replies if reply.has_error() or cast(
            float, next(iter(reply.content.metric_records.values())).get(self.weighted_by_key, 1)) > 0]

    def _check_round(self, server_round: int, replies: list[Message], failures: list[dict]) -> None:
        """Raise `RoundFailed` when a client's process died or too few clients replied successfully (a
        ClientApp that raised is counted and the run goes on)."""
        lost = [f for f in failures if not f["raised"]]
        succeeded = sum(not reply.has_error() for reply in replies)
        if lost:
            first = lost[0]
            reason = f"partition {first['partition']}'s process died or did not answer ({first['error']})"
        elif succeeded < self.min_train_replies:
            reason = (f"{succeeded} successful train replies, fewer than strategy.min_train_replies="
                      f"{self.min_train_replies}")
        else:
            return
        raise RoundFailed(f"round {server_round}: {reason}; failed partitions "
                          f"{[f['partition'] for f in failures]}")

    def _note_failures(self, server_round: int, phase: str, replies: list[Message]) -> None:
        message_type = MessageType.TRAIN if phase == "train" else MessageType.EVALUATE
        failures = reply_failures(replies, self._sampled.pop(message_type, []), self.partition_of)
        for failure in failures:
            log.warning("round %d: %s reply of partition %d failed: %s", server_round, phase,
                        failure["partition"], failure["error"])
        self._round_metrics.setdefault("failures", {})[phase] = failures

    def _note_client_epsilons(self, replies: list[Message], server_round: int) -> None:
        """Remember the cumulative ε each DP client reported (its latest reply counts), the accountant,
        and the first round in which a client said its budget was spent."""
        for reply in replies:
            if reply.has_error():
                continue
            if PRIVACY_RECORD in reply.content.config_records:
                partition = self.partition_of.get(reply.metadata.src_node_id, -1)
                privacy = ClientPrivacy.from_record(reply.content.config_records[PRIVACY_RECORD])
                self.client_epsilons[partition] = privacy.epsilon
                self.client_accountant = privacy.accountant
                if privacy.budget_exhausted:
                    self.client_stops.setdefault(partition, server_round)

    def privacy_record(self) -> dict:
        """ε so far: each DP client's latest cumulative ε and the maximum, the accountant, and the round
        each client stopped at its budget (empty without DP clients)."""
        if not self.client_epsilons:
            return {}
        return ClientsPrivacy(dict(self.client_epsilons), self.client_accountant,
                              dict(self.client_stops)).to_json()

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]
                           ) -> MetricRecord | None:
        server_round += self.rounds_done
        replies = in_partition_order(replies, self.partition_of)
        self._note_failures(server_round, "evaluate", replies)
        metrics = super().aggregate_evaluate(server_round, replies)
        self._round_metrics["evaluate"] = dict(metrics) if metrics else {}
        return metrics

    def state_dict(self) -> dict:
        """What the next round depends on besides the global model (for the lab's checkpoints)."""
        return {"announced_accuracy": self.announced_accuracy, "client_accountant": self.client_accountant,
                "client_epsilons": {str(p): e for p, e in self.client_epsilons.items()},
                "client_stops": {str(p): r for p, r in self.client_stops.items()}}

    def resume(self, rounds_done: int, state: dict) -> None:
        """Continue after `rounds_done` rounds from what `state_dict` returned then."""
        self.rounds_done = rounds_done
        self.announced_accuracy = state["announced_accuracy"]
        self.client_accountant = state["client_accountant"]
        self.client_epsilons = {int(p): float(e) for p, e in state["client_epsilons"].items()}
        self.client_stops = {int(p): int(r) for p, r in state["client_stops"].items()}

    def take_round_metrics(self) -> dict[str, dict]:
        """This round's aggregated client metrics (`train`, `evaluate`), its failed replies (`failures`)
        and, with DP clients, `privacy`;
        read once per round by whoever records it."""
        taken = {section: self._round_metrics.pop(section, {})
                 for section in ("train", "evaluate", "failures")}
        if privacy := self.privacy_record():
            taken[CLIENTS_SECTION] = privacy
        return taken
