"""flower-app: the ClientApp (the template's, plus fl-privacy's partition recorder as a mod)."""

from __future__ import annotations

from pathlib import Path

import torch
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from fl_privacy.capture import record_partitions
from flower_app.task import app_config, build, load_data
from flower_app.task import test as test_fn
from flower_app.task import train as train_fn


def _partition_mod(message: Message, context: Context, call_next):
    """Record this node's partition id where the server keeps its captures (for scoring after the run)."""
    root = Path(app_config(context.run_config)["capture-dir"]).resolve()
    return record_partitions(root)(message, context, call_next)


app = ClientApp(mods=[_partition_mod])


@app.train()
def train(msg: Message, context: Context) -> Message:
    """Train the received model on this node's data."""
    config = app_config(context.run_config)
    model = build(config["model"])
    model.load_state_dict(msg.content["arrays"].to_torch_state_dict())
    device = torch.device("cpu")
    trainloader, _ = load_data(int(context.node_config["partition-id"]),
                               int(context.node_config["num-partitions"]))
    loss = train_fn(model, trainloader, config["local-epochs"],
                    float(msg.content["config"]["lr"]), device)
    metrics = MetricRecord({"train_loss": loss, "num-examples": len(trainloader.dataset)})
    return Message(RecordDict({"arrays": ArrayRecord(model.state_dict()), "metrics": metrics}), reply_to=msg)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    """Evaluate the received model on this node's test data."""
    model = build(app_config(context.run_config)["model"])
    model.load_state_dict(msg.content["arrays"].to_torch_state_dict())
    _, testloader = load_data(int(context.node_config["partition-id"]),
                              int(context.node_config["num-partitions"]))
    loss, accuracy = test_fn(model, testloader, torch.device("cpu"))
    metrics = MetricRecord({"eval_loss": loss, "eval_acc": accuracy,
                            "num-examples": len(testloader.dataset)})
    return Message(RecordDict({"metrics": metrics}), reply_to=msg)
