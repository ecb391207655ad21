"""An honest-but-curious FedAvg server that records exactly what it sees, for gradient-inversion attacks.

For the configured rounds and partitions it saves the global weights it sent and each client's reply
with the metadata Flower carries, one file per client: `captures/round_XXX/partition_YY.pt`.
Aggregation stays FedAvg, so the federated run is real. FedSGD clients (`client.update_mode=fedsgd`,
announced by the reply metric `protocol.FEDSGD` = 1) send the mean gradient of one batch as their arrays; the
server averages the gradients and steps the global model by the announced lr (FedSGD, McMahan et al.
2017). With `capture.update_mode=fedsgd` the server asks for such a FedSGD round only in the captured
rounds (a probe inside otherwise FedAvg training).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import cast

import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord

from fl_privacy.protocol import (
    ARRAYS,
    BATCH_SIZE,
    FEDSGD,
    LEARNING_RATE,
    LOCAL_STEPS,
    METRICS,
    NUM_EXAMPLES,
    CaptureSchedule,
)
from fl_privacy.results import save_torch
from fl_privacy.run_layout import CAPTURES, round_file
from strategies.fedavg_warmup import FedAvgWithWarmup

log = logging.getLogger(__name__)

# The pseudo partition id of a secure-aggregation capture (the aggregate of every covered client).
AGGREGATE = -1


class GradientCapture(FedAvgWithWarmup):
    """FedAvgWithWarmup that records sent weights + client updates for `schedule` under `run_dir/captures`.

    With `aggregate_view` (defense.secure_aggregation) the server sees what secure aggregation leaves it:
    one capture per round (partition id `AGGREGATE`) holding the weighted mean of the covered clients'
    arrays and the total example count, never a single client's update. Flower's SecAgg+ workflow runs
    with the legacy Driver workflows, not with Message-API strategies like these, so this view is
    modelled explicitly: it is exactly the sum a SecAgg server unmasks.
    """

    def __init__(self, *, run_dir: Path, schedule: CaptureSchedule, input_shape: Sequence[int],
                 num_classes: int, aggregate_view: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.aggregate_view = aggregate_view
        self.run_dir = Path(run_dir)
        self.schedule = schedule
        self.input_shape = tuple(int(s) for s in input_shape)
        self.num_classes = num_classes
        self._sent: ArrayRecord | None = None

    def configure_round(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord
                        ) -> Iterable[Message]:
        self._sent = arrays
        config.update(self.schedule.request(server_round))
        return super().configure_round(server_round, arrays, config)

    def aggregate_round(self, server_round: int, replies: Iterable[Message]
                        ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Capture the scheduled replies, then aggregate (FedAvg, or a FedSGD step for gradients)."""
        replies = list(replies)
        assert self._sent is not None, "configure_train keeps the arrays it sends"
        sent = self._sent.to_torch_state_dict()
        by_partition = {self.partition_of.get(reply.metadata.src_node_id, -1): reply
                        for reply in replies if not reply.has_error()}
        covered = {partition: reply for partition, reply in by_partition.items()
                   if self.schedule.covers(server_round, partition)}
        if self.aggregate_view and covered:
            self._save_aggregate(server_round, covered, sent)
        else:
            for partition, reply in sorted(covered.items()):
                self._save(server_round, partition, reply, sent)
        arrays, metrics = super().aggregate_round(server_round, replies)
        # FedAvg's aggregated metrics are scalars
        if arrays is not None and metrics is not None and cast(float, metrics.get(FEDSGD, 0)) > 0:
            lr = float(cast(float, metrics[LEARNING_RATE]))
            arrays = self._gradient_step(sent, arrays.to_torch_state_dict(), lr)
        return arrays, metrics

    @staticmethod
    def _gradient_step(sent: dict[str, torch.Tensor], gradient: dict[str, torch.Tensor],
                       lr: float) -> ArrayRecord:
        """FedSGD: the sent weights minus lr times the example-weighted mean gradient."""
        return ArrayRecord({name: value - lr * gradient[name] if name in gradient else value
                            for name, value in sent.items()})

    def _save(self, server_round: int, partition: int, reply: Message,
              sent: dict[str, torch.Tensor]) -> None:
        metrics = reply.content.metric_records[METRICS]
        self._write(server_round, partition, sent, reply.content.array_records[ARRAYS].to_torch_state_dict(),
                    metrics,
                    {"node_id": int(reply.metadata.src_node_id)})

    def _save_aggregate(self, server_round: int, covered: dict[int, Message],
                        sent: dict[str, torch.Tensor]) -> None:
        """The secure-aggregation view: only the example-weighted mean of the covered clients' arrays
        (their sum divided by the total count, which SecAgg reveals) and the pooled metadata."""
        metrics = [reply.content.metric_records[METRICS] for reply in covered.values()]
        counts = [int(cast(int, m[NUM_EXAMPLES])) for m in metrics]
        states = [reply.content.array_records[ARRAYS].to_torch_state_dict() for reply in covered.values()]
        total = sum(counts)
        # `covered` is not empty, so each sum is a tensor (never sum's start value 0)
        mean = {name: cast(torch.Tensor, sum(count * state[name]
                                             for count, state in zip(counts, states, strict=True))) / total
                for name in states[0]}
        pooled = dict(metrics[0]) | {NUM_EXAMPLES: total,
                                     LOCAL_STEPS: max(int(cast(int, m[LOCAL_STEPS])) for m in metrics)}
        self._write(server_round, AGGREGATE, sent, mean, pooled,
                    {"partitions": sorted(covered), "num_clients": len(covered)})

    def _write(self, server_round: int, partition: int, sent: dict[str, torch.Tensor],
               returned: dict[str, torch.Tensor], metrics, extra: dict) -> None:
        fedsgd = metrics.get(FEDSGD, 0) > 0
        num_examples = int(metrics[NUM_EXAMPLES])
        meta = {"round": server_round, "partition": partition, **extra,
                "mode": "fedsgd" if fedsgd else "fedavg", "lr": float(metrics[LEARNING_RATE]),
                "local_steps": int(metrics[LOCAL_STEPS]), "num_examples": num_examples,
                # a FedSGD batch is the examples the gradient was taken over
                "batch_size": num_examples if fedsgd else int(metrics[BATCH_SIZE]),
                "input_shape": list(self.input_shape), "num_classes": self.num_classes}
        record = {"global_state": sent, "metadata": meta,
                  ("gradient" if fedsgd else "updated_state"): returned}
        path = round_file(self.run_dir, CAPTURES, server_round, partition, ".pt")
        save_torch(path, record)
        log.info("captured round %d partition %d (%s, %d examples)", server_round, partition,
                 meta["mode"], num_examples)
