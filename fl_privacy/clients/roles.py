"""The registry of client roles and the job description every role receives.

A role is a function `(job, model) -> metrics` that updates `model` (the received global
model) in place and returns the metrics to report. `fl_privacy.clients.ROLES` maps names to
roles; the config validator checks role names against it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from flwr.app import Context
from omegaconf import DictConfig
from torch import nn

from fl_privacy.data.datasets import ImageDataset
from fl_privacy.data.federation import Federation
from fl_privacy.defenses.update_defenses import SuppressSchedule, suppression_hook
from fl_privacy.seeding import CLIENT_DATA, CLIENT_TRAINING, derive_seed
from fl_privacy.training import StepHook, TrainSettings, TrainStats, batch_gradient, train

UPDATES = ("fedavg", "fedsgd")


@dataclass
class ClientJob:
    """What a client knows in one round: the experiment config, its data, the round, its state,
    what the server announced in the round's config, and where the run keeps its files."""

    cfg: DictConfig
    federation: Federation
    partition_id: int
    server_round: int
    context: Context
    run_dir: Path | None = None
    # The server's train config of this round (it may ask for another `update-mode` / `batch-size`).
    round_config: Mapping = field(default_factory=dict)
    # Set by a FedSGD role: the gradient is sent instead of the model's weights.
    gradient: dict[str, torch.Tensor] | None = None
    # Indices into the training split this round's update used (the lab's evaluation side channel).
    used_indices: np.ndarray | None = None
    # Set by a DP role: its privacy spent so far (cumulative ε, δ, σ, clipping bound, steps), sent in the
    # reply's "privacy" ConfigRecord, beside the metrics every client sends alike.
    privacy: dict[str, float] | None = None

    @property
    def seed(self) -> int:
        return derive_seed(self.cfg.seed, CLIENT_TRAINING, self.server_round, self.partition_id)

    @property
    def update_mode(self) -> str:
        """`fedavg` or `fedsgd`: the server's request for this round, else `client.update_mode`."""
        return str(self.round_config.get("update-mode", self.cfg.client.update_mode))

    @property
    def batch_size(self) -> int:
        return int(self.round_config.get("batch-size", self.cfg.client.batch_size))

    def suppression(self, model: nn.Module) -> StepHook | None:
        """The suppress-privacy step hook of this round (None when `defense.suppress` is off)."""
        if not self.cfg.defense.suppress.enabled:
            return None
        schedule = SuppressSchedule.from_cfg(self.cfg.defense.suppress)
        return suppression_hook(schedule, model, self.server_round)

    def training_data(self) -> ImageDataset:
        """This round's local data: one batch of `batch_size` for FedSGD, `examples_per_round` for FedAvg.

        The examples are drawn from the partition with the seed (all of it when the count is null or
        larger) and remembered in `used_indices`.
        """
        own = self.federation.client_indices[self.partition_id]
        count = self.batch_size if self.update_mode == "fedsgd" else self.cfg.client.examples_per_round
        if count is not None and count < len(own):
            rng = np.random.default_rng(derive_seed(self.cfg.seed, CLIENT_DATA, self.server_round,
                                                    self.partition_id))
            own = np.sort(rng.choice(own, int(count), replace=False))
        self.used_indices = own
        return self.federation.splits.train.subset(own)


def honest(job: ClientJob, model: nn.Module) -> dict[str, float]:
    """Train locally as configured in `client` (FedAvg), or take the gradient of one batch (FedSGD)."""
    data = job.training_data()
    if job.update_mode == "fedsgd":
        job.gradient, stats = batch_gradient(model, data)
    else:
        settings = replace(TrainSettings.from_cfg(job.cfg.client), batch_size=job.batch_size)
        stats = train(model, data, settings, seed=job.seed, after_step=job.suppression(model))
    return update_metrics(stats)


def update_metrics(stats: TrainStats) -> dict[str, float]:
    """The metrics every reply carries about its local update (FedAvg weights by `num-examples`)."""
    return {"train_loss": stats.loss, "train_accuracy": stats.accuracy,
            "num-examples": stats.num_examples, "local_steps": stats.steps}


Role = Callable[[ClientJob, nn.Module], dict[str, float]]


def role_of(client_cfg, partition_id: int) -> str:
    """The role assigned to `partition_id` in `client.roles`, else the default `client.role`."""
    roles = {int(k): v for k, v in (client_cfg.roles or {}).items()}
    return roles.get(partition_id, client_cfg.role)
