"""What a client knows in one round (`ClientJob`), the honest role, and the hooks the lab gives clients.

A role is a function `(job, model) -> metrics` that updates `model` (the received global model) in place
and returns the metrics to report. The registry of roles is `fl_privacy.apps.client_app.ROLES`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np
import torch
from flwr.app import Context, RecordDict
from torch import nn

from fl_privacy.config.schema import Settings
from fl_privacy.data.federation import LocalData
from fl_privacy.data.images import ImageDataset
from fl_privacy.defenses.update_defenses import SuppressSchedule, suppression_hook
from fl_privacy.privacy_record import ClientPrivacy
from fl_privacy.protocol import (
    BATCH_SIZE,
    EXAMPLES,
    LOCAL_STEPS,
    NUM_EXAMPLES,
    TRAIN_ACCURACY,
    TRAIN_LOSS,
    UPDATE_MODE,
)
from fl_privacy.seeding import Stream, derive_seed
from fl_privacy.training import StepHook, TrainSettings, TrainStats, batch_gradient, train

# Roles that apply the client-side update defenses (defense.pruning); an adversary would not.
DEFENDED_ROLES = frozenset({"honest", "dp"})


class LabHooks(Protocol):
    """The lab's side channels into a client (explicit, so no role reads another's files):
    `record_truth` notes which examples an update used (for scoring attacks, never for attackers);
    `publish` hands an insider attacker's artifact (e.g. its generator) to the lab's monitor;
    `save_node_state` / `restore_node_state` keep a node's persistent state for checkpoints and resumes."""

    def record_truth(self, server_round: int, partition_id: int, indices: np.ndarray) -> None: ...

    def publish(self, name: str, server_round: int, payload: dict[str, Any]) -> None: ...

    def save_node_state(self, partition_id: int, server_round: int, state: RecordDict) -> None: ...

    def restore_node_state(self, partition_id: int, state: RecordDict) -> None: ...


def role_of(settings: Settings, partition_id: int) -> str:
    """The role assigned to `partition_id` in `client.roles`, else the default `client.role`; the last
    `attack.dp_audit_fl.canary_clients` partitions are canary clients."""
    if partition_id >= settings.simulation.num_clients - settings.attack.dp_audit_fl.canary_clients:
        return "canary"
    return settings.client.roles.get(partition_id, settings.client.role)



@dataclass
class ClientJob:
    """What a client knows in one round: the settings, its own data (never another node's), the round,
    its state, what the server announced in the round's config, and the lab's hooks."""

    settings: Settings
    data: LocalData
    partition_id: int
    server_round: int
    context: Context
    hooks: LabHooks
    # The server's train config of this round (it may ask for another update mode / batch size).
    round_config: Mapping = field(default_factory=dict)
    # Set by a FedSGD role: the gradient is sent instead of the model's weights.
    gradient: dict[str, torch.Tensor] | None = None
    # Indices into the training split this round's update used (for the lab's truth hook).
    used_indices: np.ndarray | None = None
    # Set by a DP role: its privacy spent so far, sent in the reply's privacy record.
    privacy: ClientPrivacy | None = None

    @property
    def seed(self) -> int:
        return derive_seed(self.settings.seed, Stream.CLIENT_TRAINING, self.server_round, self.partition_id)

    @property
    def update_mode(self) -> str:
        """`fedavg` or `fedsgd`: the server's request for this round, else `client.update_mode`."""
        return str(self.round_config.get(UPDATE_MODE, self.settings.client.update_mode))

    @property
    def batch_size(self) -> int:
        return int(self.round_config.get(BATCH_SIZE, self.settings.client.batch_size))

    @property
    def train_settings(self) -> TrainSettings:
        """`client.*` training with this round's batch size."""
        return replace(TrainSettings.of(self.settings.client), batch_size=self.batch_size)

    def suppression(self, model: nn.Module) -> StepHook | None:
        """The suppress-privacy step hook of this round (None when `defense.suppress` is off)."""
        suppress = self.settings.defense.suppress
        if not suppress.enabled:
            return None
        return suppression_hook(SuppressSchedule.of(suppress), model, self.server_round)

    def training_data(self) -> ImageDataset:
        """This round's local data: one batch of `batch_size` for FedSGD, `examples_per_round` for FedAvg.

        The examples are drawn from the partition with the seed (all of it when the count is null or
        larger) and remembered in `used_indices`.
        """
        count = self.round_config.get(EXAMPLES, self.batch_size if self.update_mode == "fedsgd"
                                      else self.settings.client.examples_per_round)
        count = None if count is None else int(count)
        rng = np.random.default_rng(derive_seed(self.settings.seed, Stream.CLIENT_DATA, self.server_round,
                                                self.partition_id))
        data, self.used_indices = self.data.draw(count, rng)
        return data


def honest(job: ClientJob, model: nn.Module) -> dict[str, float]:
    """Train locally as configured in `client` (FedAvg), or take the gradient of one batch (FedSGD)."""
    data = job.training_data()
    if job.update_mode == "fedsgd":
        job.gradient, stats = batch_gradient(model, data)
    else:
        stats = train(model, data, job.train_settings, seed=job.seed, after_step=job.suppression(model))
    return update_metrics(stats)


def update_metrics(stats: TrainStats) -> dict[str, float]:
    """The metrics every reply carries about its local update (FedAvg weights by `num-examples`)."""
    return {TRAIN_LOSS: stats.loss, TRAIN_ACCURACY: stats.accuracy, NUM_EXAMPLES: stats.num_examples,
            LOCAL_STEPS: stats.steps}


Role = Callable[[ClientJob, nn.Module], dict[str, float]]
