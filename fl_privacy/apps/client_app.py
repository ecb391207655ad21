"""The ClientApp: every node loads its partition and acts out its configured role."""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, MetricRecordValues, RecordDict
from flwr.clientapp import ClientApp

from fl_privacy.allocator import keep_freed_memory
from fl_privacy.apps.canary_client import canary_client
from fl_privacy.apps.dp_client import dp_client
from fl_privacy.apps.gan_adversary import gan_adversary
from fl_privacy.apps.roles import DEFENDED_ROLES, ClientJob, LabHooks, Role, honest, role_of
from fl_privacy.config.schema import Settings
from fl_privacy.data.federation import cached_federation
from fl_privacy.defenses.update_defenses import prune_update
from fl_privacy.devices import torch_device
from fl_privacy.models import build_model, model_outputs
from fl_privacy.protocol import (
    ARRAYS,
    BATCH_SIZE,
    CONFIG,
    EVAL_ACCURACY,
    EVAL_LOSS,
    FEDSGD,
    LEARNING_RATE,
    METRICS,
    NUM_EXAMPLES,
    PARTITION_ID,
    PARTITION_RECORD,
    PRIVACY_RECORD,
    SERVER_ROUND,
    UNIT_WEIGHT,
)
from fl_privacy.training import evaluate

# `client.role` / `client.roles` -> what the node does with the global model it receives each round
ROLES: dict[str, Role] = {"honest": honest, "gan_adversary": gan_adversary, "dp": dp_client,
                          "canary": canary_client}


def _partition_id(context: Context) -> int:
    return int(context.node_config[PARTITION_ID])


def _received_model(settings: Settings, msg: Message) -> torch.nn.Module:
    splits = cached_federation(settings.federation).splits
    model = build_model(settings.model, splits.image_shape,
                        model_outputs(settings.client, splits.num_classes))
    model.load_state_dict(msg.content.array_records[ARRAYS].to_torch_state_dict())
    return model.to(torch_device(settings.device))


def announced(job: ClientJob) -> dict[str, float]:
    """What every reply announces about the local update: lr, batch size, FedSGD (1) or FedAvg (0), and
    the weight 1 that central DP's uniform averaging uses."""
    return {LEARNING_RATE: job.settings.client.lr, BATCH_SIZE: job.batch_size,
            FEDSGD: int(job.update_mode == "fedsgd"), UNIT_WEIGHT: 1}


def handle_train(settings: Settings, hooks: LabHooks, msg: Message, context: Context) -> Message:
    """Train the received global model as this node's role and return weights (or a gradient) + metrics."""
    torch.set_num_threads(settings.simulation.torch_threads_per_client)
    keep_freed_memory()
    partition_id = _partition_id(context)
    round_config = msg.content.config_records[CONFIG]
    server_round = int(cast(int, round_config[SERVER_ROUND]))  # Flower's strategies send an int
    hooks.restore_node_state(partition_id, context.state)
    own_data = cached_federation(settings.federation).local_data(partition_id)
    job = ClientJob(settings, own_data, partition_id, server_round, context, hooks,
                    round_config=dict(round_config))
    model = _received_model(settings, msg)
    role = role_of(settings, partition_id)
    prune = settings.defense.pruning.fraction if role in DEFENDED_ROLES else 0.0
    sent = {name: value.clone() for name, value in model.state_dict().items()} if prune else {}
    metrics = ROLES[role](job, model) | announced(job)
    if job.used_indices is not None:
        hooks.record_truth(job.server_round, partition_id, job.used_indices)
    hooks.save_node_state(partition_id, server_round, context.state)
    reply = job.gradient if job.gradient is not None else model.state_dict()
    if prune:
        reply = prune_update(sent, reply, prune, job.gradient is not None)
    content = RecordDict({ARRAYS: ArrayRecord(reply), METRICS: MetricRecord(dict(metrics))})
    if job.privacy is not None:
        content[PRIVACY_RECORD] = ConfigRecord(dict(job.privacy.to_record()))
    return Message(content=content, reply_to=msg)


def handle_evaluate(settings: Settings, msg: Message, context: Context) -> Message:
    """Evaluate the global model on the test examples of the classes this node holds."""
    torch.set_num_threads(settings.simulation.torch_threads_per_client)
    federation = cached_federation(settings.federation)
    test = federation.splits.test
    own = torch.isin(test.labels, torch.tensor(federation.client_classes(_partition_id(context))))
    local_test = test.subset(own.nonzero().squeeze(1))
    result = evaluate(_received_model(settings, msg), local_test, federation.splits.num_classes)
    metrics: dict[str, MetricRecordValues] = {EVAL_LOSS: result.loss, EVAL_ACCURACY: result.accuracy,
                                              NUM_EXAMPLES: len(local_test)}
    return Message(content=RecordDict({METRICS: MetricRecord(metrics)}), reply_to=msg)


def handle_query(msg: Message, context: Context) -> Message:
    """Answer the server's partition-id query (used for reproducible sampling)."""
    record = MetricRecord({PARTITION_ID: _partition_id(context)})
    return Message(content=RecordDict({PARTITION_RECORD: record}), reply_to=msg)


def client_app_from(settings_of: Callable[[Context], Settings], hooks_of: Callable[[Context], LabHooks]
                    ) -> ClientApp:
    """A ClientApp whose handlers get the settings and the lab's hooks from each node's context."""
    app = ClientApp()

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        return handle_train(settings_of(context), hooks_of(context), msg, context)

    @app.evaluate()
    def evaluate_(msg: Message, context: Context) -> Message:
        return handle_evaluate(settings_of(context), msg, context)

    @app.query()
    def query(msg: Message, context: Context) -> Message:
        return handle_query(msg, context)

    return app


def build_client_app(settings: Settings, hooks: LabHooks) -> ClientApp:
    """A ClientApp that carries the settings and the lab's hooks into the Ray actors."""
    return client_app_from(lambda context: settings, lambda context: hooks)
