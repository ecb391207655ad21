"""The ClientApp: every node loads its partition and acts out its configured role."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from omegaconf import DictConfig

from fl_privacy.allocator import keep_freed_memory
from fl_privacy.clients import DEFENDED_ROLES, ROLES, ClientJob, model_outputs, role_of
from fl_privacy.data.federation import cached_federation
from fl_privacy.defenses.update_defenses import prune_update
from fl_privacy.models import build_model
from fl_privacy.results import TRUTH, round_file, write_json
from fl_privacy.training import evaluate
from strategies.central_dp import UNIT_WEIGHT
from strategies.fedavg_warmup import PRIVACY_RECORD
from strategies.gradient_capture import CaptureSchedule
from strategies.partition_sampling import PARTITION_QUERY


def _partition_id(context: Context) -> int:
    return int(context.node_config["partition-id"])


def _received_model(cfg: DictConfig, msg: Message):
    splits = cached_federation(cfg).splits
    model = build_model(cfg.model, splits.image_shape, model_outputs(cfg, splits.num_classes))
    model.load_state_dict(msg.content["arrays"].to_torch_state_dict())
    return model


def announced(job: ClientJob) -> dict[str, float]:
    """What every reply announces about the local update: lr, batch size, FedSGD (1) or FedAvg (0), and
    the weight 1 that central DP's uniform averaging uses."""
    return {"lr": float(job.cfg.client.lr), "batch_size": job.batch_size,
            "fedsgd": int(job.update_mode == "fedsgd"), UNIT_WEIGHT: 1}


def record_truth(cfg: DictConfig, run_dir: Path | None, job: ClientJob) -> None:
    """Write the examples a captured update used to `truth/` (the lab's evaluation side channel).

    Only the evaluation step reads these files; attacks see nothing but the capture.
    """
    if run_dir is None or job.used_indices is None or cfg.strategy.name != "gradient_capture":
        return
    if CaptureSchedule.from_cfg(cfg.strategy.capture).covers(job.server_round, job.partition_id):
        write_json(round_file(run_dir, TRUTH, job.server_round, job.partition_id, ".json"),
                   {"indices": job.used_indices.tolist()})


def handle_train(cfg: DictConfig, msg: Message, context: Context, run_dir: Path | None = None) -> Message:
    """Train the received global model as this node's role and return weights (or a gradient) + metrics."""
    torch.set_num_threads(int(cfg.simulation.torch_threads_per_client))
    keep_freed_memory()
    partition_id = _partition_id(context)
    round_config = msg.content["config"]
    job = ClientJob(cfg, cached_federation(cfg), partition_id, int(round_config["server-round"]), context,
                    run_dir=run_dir, round_config=dict(round_config))
    model = _received_model(cfg, msg)
    role = role_of(cfg.client, partition_id)
    prune = float(cfg.defense.pruning.fraction) if role in DEFENDED_ROLES else 0.0
    sent = {name: value.clone() for name, value in model.state_dict().items()} if prune else {}
    metrics = ROLES[role](job, model) | announced(job)
    record_truth(cfg, run_dir, job)
    reply = job.gradient if job.gradient is not None else model.state_dict()
    if prune:
        reply = prune_update(sent, reply, prune, job.gradient is not None)
    arrays = ArrayRecord(reply)
    content = RecordDict({"arrays": arrays, "metrics": MetricRecord(metrics)})
    if job.privacy is not None:
        content[PRIVACY_RECORD] = ConfigRecord(job.privacy)
    return Message(content=content, reply_to=msg)


def handle_evaluate(cfg: DictConfig, msg: Message, context: Context) -> Message:
    """Evaluate the global model on the test examples of the classes this node holds."""
    torch.set_num_threads(int(cfg.simulation.torch_threads_per_client))
    federation = cached_federation(cfg)
    test = federation.splits.test
    own = torch.isin(test.labels, torch.tensor(federation.client_classes(_partition_id(context))))
    local_test = test.subset(own.nonzero().squeeze(1))
    result = evaluate(_received_model(cfg, msg), local_test, federation.splits.num_classes)
    metrics = {"eval_loss": result.loss, "eval_accuracy": result.accuracy,
               "num-examples": len(local_test)}
    return Message(content=RecordDict({"metrics": MetricRecord(metrics)}), reply_to=msg)


def handle_query(msg: Message, context: Context) -> Message:
    """Answer the server's partition-id query (used for reproducible sampling)."""
    record = MetricRecord({PARTITION_QUERY: _partition_id(context)})
    return Message(content=RecordDict({"partition": record}), reply_to=msg)


def client_app_from(cfg_of: Callable[[Context], DictConfig],
                    run_dir_of: Callable[[Context], Path | None]) -> ClientApp:
    """A ClientApp whose handlers get the experiment config and run directory from each node's context."""
    app = ClientApp()

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        return handle_train(cfg_of(context), msg, context, run_dir_of(context))

    @app.evaluate()
    def evaluate_(msg: Message, context: Context) -> Message:
        return handle_evaluate(cfg_of(context), msg, context)

    @app.query()
    def query(msg: Message, context: Context) -> Message:
        return handle_query(msg, context)

    return app


def build_client_app(cfg: DictConfig, run_dir: Path | None = None) -> ClientApp:
    """A ClientApp whose handlers carry the experiment config (and the run directory) into the Ray actors."""
    return client_app_from(lambda context: cfg, lambda context: run_dir)
