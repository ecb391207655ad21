"""Record what the server of *your own* Flower Message-API app sees, for `fl-privacy audit-captures`.

- `capture_updates(strategy, out_dir)` wraps any `flwr.serverapp.strategy.Strategy` (the honest-but-curious
  server's view): per round it saves the arrays the strategy sent to each node and every reply's arrays and
  metrics (num-examples, node id) as `out_dir/captures/round_XXX/node_ID.pt`, in the lab's capture format
  (`global_state`, `updated_state` = the arrays the node returned, `metadata`). Everything else is the wrapped
  strategy's own doing: its messages, its aggregation, its results and its errors pass through unchanged.
- `record_partitions(out_dir)` is a client mod (`ClientApp(mods=[record_partitions(out_dir)])`) that writes
  each node's `node_config` (its partition id) to `out_dir/partitions/node_ID.json`, so the truth can be
  looked up *after* the run for scoring. The attack never reads it.

    strategy = capture_updates(FedAvg(fraction_train=1.0), "/tmp/audit")
    result = strategy.start(grid=grid, initial_arrays=arrays, num_rounds=3)

`out_dir` must be a path every node can write to (a local simulation: any absolute path).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from fl_privacy.results import save_torch, write_json
from fl_privacy.run_layout import node_capture_file, node_partition_file

log = logging.getLogger(__name__)

WRITER = "fl_privacy.capture"  # `metadata["writer"]` of every capture this module writes
DEFAULT_WEIGHT_KEY = "num-examples"  # Flower's FedAvg default `weighted_by_key`


def _arrays_of(message: Message, key: str | None) -> tuple[str, ArrayRecord] | None:
    """The message's ArrayRecord under `key`, or its only one; None when it carries none (or several and
    none under `key`)."""
    records = message.content.array_records
    if key is not None and key in records:
        return key, records[key]
    if len(records) == 1:
        return next(iter(records.items()))
    return None


def _scalars(message: Message) -> dict[str, Any]:
    """Every metric of every MetricRecord in a reply, flattened (`name` or `record.name` on a clash)."""
    flat: dict[str, Any] = {}
    for record_name, record in message.content.metric_records.items():
        for name, value in record.items():
            flat[name if name not in flat else f"{record_name}.{name}"] = value
    return flat


class CapturingStrategy(Strategy):
    """A `Strategy` that records the curious server's view and otherwise is the wrapped `strategy`.

    Every method forwards to the wrapped strategy and returns what it returns; attributes are read from it
    (`wrapper.fraction_train`). `start` is Flower's own round loop, which calls these methods.
    """

    def __init__(self, strategy: Strategy, out_dir: str | Path) -> None:
        if not isinstance(strategy, Strategy):
            raise TypeError(f"capture_updates wraps a flwr.serverapp.strategy.Strategy, got "
                            f"{type(strategy).__name__}")
        self.strategy = strategy
        self.out_dir = Path(out_dir)
        self._sent: dict[int, ArrayRecord] = {}  # this round's arrays per destination node

    def __getattr__(self, name: str) -> Any:
        # only called for names this wrapper lacks: the wrapped strategy's own settings
        if name == "strategy":
            raise AttributeError(name)
        return getattr(self.strategy, name)

    @property
    def _arrays_key(self) -> str | None:
        return getattr(self.strategy, "arrayrecord_key", None)

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                        grid: Grid) -> Iterable[Message]:
        """The wrapped strategy's training messages; the arrays each carries are kept for the capture."""
        messages = list(self.strategy.configure_train(server_round, arrays, config, grid))
        self._sent = {}
        for message in messages:
            found = _arrays_of(message, self._arrays_key)
            if found is not None:
                self._sent[int(message.metadata.dst_node_id)] = found[1]
        return messages

    def aggregate_train(self, server_round: int, replies: Iterable[Message]
                        ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Record every successful reply, then return the wrapped strategy's aggregate of the same replies."""
        replies = list(replies)
        for reply in replies:
            if not reply.has_error():
                self._record(server_round, reply)
        return self.strategy.aggregate_train(server_round, replies)

    def _record(self, server_round: int, reply: Message) -> None:
        node_id = int(reply.metadata.src_node_id)
        found = _arrays_of(reply, self._arrays_key)
        sent = self._sent.get(node_id)
        if found is None or sent is None:
            log.warning("round %d: node %d's reply (or the message sent to it) carries no single "
                        "ArrayRecord; not captured", server_round, node_id)
            return
        key, returned = found
        metrics = _scalars(reply)
        weight_key = getattr(self.strategy, "weighted_by_key", DEFAULT_WEIGHT_KEY)
        count = metrics.get(weight_key)
        meta = {"round": server_round, "node_id": node_id, "writer": WRITER, "arrays_key": key,
                "num_examples": int(count) if isinstance(count, int | float) else None,
                "num_examples_key": weight_key, "metrics": metrics,
                "strategy": type(self.strategy).__name__}
        record = {"global_state": sent.to_torch_state_dict(), "updated_state": returned.to_torch_state_dict(),
                  "metadata": meta}
        save_torch(node_capture_file(self.out_dir, server_round, node_id), record)
        log.info("captured round %d node %d (%s examples)", server_round, node_id, meta["num_examples"])

    def configure_evaluate(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                           grid: Grid) -> Iterable[Message]:
        """The wrapped strategy's evaluation messages."""
        return self.strategy.configure_evaluate(server_round, arrays, config, grid)

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        """The wrapped strategy's evaluation aggregate."""
        return self.strategy.aggregate_evaluate(server_round, replies)

    def summary(self) -> None:
        """The wrapped strategy's summary, and where the captures go."""
        self.strategy.summary()
        log.info("capturing every training reply under %s", self.out_dir)


def capture_updates(strategy: Strategy, out_dir: str | Path) -> CapturingStrategy:
    """Wrap `strategy` so that every training round's sent arrays and replies are saved under `out_dir`."""
    return CapturingStrategy(strategy, out_dir)


ClientAppCallable = Callable[[Message, Context], Message]
Mod = Callable[[Message, Context, ClientAppCallable], Message]


def record_partitions(out_dir: str | Path) -> Mod:
    """A client mod writing the node's `node_config` (e.g. `partition-id`) once to
    `out_dir/partitions/node_ID.json`; the message and the reply pass through untouched."""
    root = Path(out_dir)

    def mod(message: Message, context: Context, call_next: ClientAppCallable) -> Message:
        path = node_partition_file(root, int(context.node_id))
        if not path.exists():
            write_json(path, {"node_id": int(context.node_id), "node_config": dict(context.node_config)})
        return call_next(message, context)

    return mod
