"""Auditing a user's own Flower app (issue 30): the strategy wrapper records faithfully and passes errors
through, the partition mod records node_config, and `audit-captures` turns a tiny capture into a report."""

from __future__ import annotations

import json
import random

import pytest
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, Metadata, MetricRecord, RecordDict
from flwr.serverapp.strategy import FedAvg
from torch import nn

from fl_privacy.capture import capture_updates, record_partitions
from fl_privacy.results import load_tensors
from fl_privacy.run_layout import node_capture_file, node_partition_file

NODES = (11, 22, 33)


@pytest.fixture(autouse=True)
def _task_identity(monkeypatch):
    """What Flower's server process would have set before messages are built."""
    from flwr.supercore.task_identity import TaskIdentity

    for identity in ("_task_id", "_run_id", "_node_id"):
        monkeypatch.setattr(TaskIdentity, identity, 1)


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Linear(4, 3)


def _client_train(message: Message, node: int) -> Message:
    """A node's local training: one SGD step on its own fixed data; replies arrays and num-examples."""
    model = _model()
    model.load_state_dict(message.content.array_records["arrays"].to_torch_state_dict())
    generator = torch.Generator().manual_seed(node)
    x, y = torch.randn(node % 5 + 2, 4, generator=generator), torch.randint(0, 3, (node % 5 + 2,),
                                                                           generator=generator)
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    with torch.no_grad():
        for p in model.parameters():
            p -= 0.1 * p.grad
    metrics = MetricRecord({"num-examples": len(x), "train_loss": float(loss.detach())})
    content = RecordDict({"arrays": ArrayRecord(model.state_dict()), "metrics": metrics})
    return _reply(content, message, node)


def _reply(content: RecordDict, message: Message, node: int) -> Message:
    metadata = Metadata(run_id=1, message_id=f"r{node}", src_node_id=node, dst_node_id=0,
                        reply_to_message_id=message.metadata.message_id, group_id="", created_at=0.0,
                        ttl=60.0, message_type=message.metadata.message_type)
    return Message(content=content, metadata=metadata)


class FakeGrid:
    """The part of Flower's Grid that `Strategy.start` uses: node ids and send-and-receive in process."""

    def __init__(self) -> None:
        self.sent: list[Message] = []

    def get_node_ids(self) -> list[int]:
        return list(NODES)

    def send_and_receive(self, messages, timeout=None):
        messages = list(messages)
        self.sent += messages
        return iter([_client_train(m, m.metadata.dst_node_id) for m in messages])  # a one-shot iterable


def _start(strategy, rounds: int = 2):
    random.seed(0)  # Flower samples nodes with `random`: the same order, so the same summation order
    return strategy.start(grid=FakeGrid(), initial_arrays=ArrayRecord(_model().state_dict()),
                          num_rounds=rounds)


def test_wrapper_records_every_reply_and_leaves_the_run_unchanged(tmp_path):
    plain = _start(FedAvg(fraction_evaluate=0.0))
    wrapped = capture_updates(FedAvg(fraction_evaluate=0.0), tmp_path)
    captured = _start(wrapped)
    # the same aggregate, round by round, as the strategy on its own
    for name, value in plain.arrays.to_torch_state_dict().items():
        assert torch.equal(captured.arrays.to_torch_state_dict()[name], value)
    assert dict(captured.train_metrics_clientapp[2]) == dict(plain.train_metrics_clientapp[2])
    assert wrapped.fraction_train == 1.0  # the wrapped strategy's settings read through
    initial = _model().state_dict()
    for node in NODES:
        first = load_tensors(node_capture_file(tmp_path, 1, node))
        for name, value in initial.items():  # round 1 sent the initial arrays
            assert torch.equal(first["global_state"][name], value)
        meta = first["metadata"]
        assert meta["node_id"] == node and meta["round"] == 1
        assert meta["num_examples"] == node % 5 + 2 and "train_loss" in meta["metrics"]
        # what the node returned, exactly (replayed here from the same sent arrays)
        again = _client_train(Message(RecordDict({"arrays": ArrayRecord(first["global_state"])}),
                                      dst_node_id=node, message_type="train"), node)
        for name, value in again.content.array_records["arrays"].to_torch_state_dict().items():
            assert torch.equal(first["updated_state"][name], value)
        second = load_tensors(node_capture_file(tmp_path, 2, node))
        assert not torch.equal(second["global_state"]["weight"], first["global_state"]["weight"])


class Broken(FedAvg):
    def aggregate_train(self, server_round, replies):
        raise RuntimeError(f"user bug in round {server_round}")


class BrokenConfigure(FedAvg):
    def configure_train(self, server_round, arrays, config, grid):
        raise KeyError("missing-key")


@pytest.mark.parametrize("strategy,error,text", [(Broken, RuntimeError, "user bug in round 1"),
                                                 (BrokenConfigure, KeyError, "missing-key")])
def test_wrapped_strategy_errors_pass_through_unchanged(tmp_path, strategy, error, text):
    with pytest.raises(error) as plain:
        _start(strategy(fraction_evaluate=0.0))
    with pytest.raises(error) as wrapped:
        _start(capture_updates(strategy(fraction_evaluate=0.0), tmp_path))
    assert type(wrapped.value) is type(plain.value) and str(wrapped.value) == str(plain.value)
    assert text in str(wrapped.value)


def test_wrapper_refuses_what_is_not_a_strategy(tmp_path):
    with pytest.raises(TypeError, match="Strategy"):
        capture_updates(object(), tmp_path)  # type: ignore[arg-type]


def test_partition_mod_records_node_config_and_passes_the_reply_through(tmp_path):
    mod = record_partitions(tmp_path)
    context = Context(run_id=1, node_id=22, node_config={"partition-id": 3, "num-partitions": 4},
                      state=RecordDict(), run_config={})
    message = Message(RecordDict({"config": ConfigRecord({"x": 1})}), dst_node_id=22, message_type="train")
    sentinel = _reply(RecordDict(), message, 22)
    seen = []

    def call_next(msg, ctx):
        seen.append((msg, ctx))
        return sentinel

    assert mod(message, context, call_next) is sentinel
    assert seen == [(message, context)]
    record = json.loads(node_partition_file(tmp_path, 22).read_text())
    assert record == {"node_id": 22, "node_config": {"partition-id": 3, "num-partitions": 4}}
