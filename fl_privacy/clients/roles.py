"""The registry of client roles and the job description every role receives.

A role is a function `(job, model) -> metrics` that updates `model` (the received global
model) in place and returns the metrics to report. `fl_privacy.clients.ROLES` maps names to
roles; the config validator checks role names against it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from flwr.app import Context
from omegaconf import DictConfig
from torch import nn

from fl_privacy.data.federation import Federation
from fl_privacy.seeding import CLIENT_TRAINING, derive_seed
from fl_privacy.training import TrainSettings, train


@dataclass
class ClientJob:
    """What a client knows in one round: the experiment config, its data, the round, its state,
    what the server announced in the round's config, and where the run keeps its files."""

    cfg: DictConfig
    federation: Federation
    partition_id: int
    server_round: int
    context: Context
    run_dir: Path
    announced: dict = field(default_factory=dict)

    @property
    def seed(self) -> int:
        return derive_seed(self.cfg.seed, CLIENT_TRAINING, self.server_round, self.partition_id)


def honest(job: ClientJob, model: nn.Module) -> dict[str, float]:
    """Train locally on the own partition as configured in `client`."""
    stats = train(model, job.federation.client_data(job.partition_id),
                  TrainSettings.from_cfg(job.cfg.client), seed=job.seed)
    return {"train_loss": stats.loss, "train_accuracy": stats.accuracy,
            "num-examples": stats.num_examples, "local_steps": stats.steps}


Role = Callable[[ClientJob, nn.Module], dict[str, float]]


def role_of(client_cfg, partition_id: int) -> str:
    """The role assigned to `partition_id` in `client.roles`, else the default `client.role`."""
    roles = {int(k): v for k, v in (client_cfg.roles or {}).items()}
    return roles.get(partition_id, client_cfg.role)
