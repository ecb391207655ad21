"""How the membership auditor trains its shadow/reference models (`attack.membership.training.recipe`).

- `central`: the lab's one training loop on the model's records with `attack.membership.training`;
- `federated`: the target's own recipe, so that calibration attacks compare like with like: the records
  are partitioned over `simulation.num_clients` clients as the target's data was (`partition`), and
  `strategy.num_rounds` FedAvg rounds run in-process, every client training with `client.*` from the
  round's global weights, the server taking the example-weighted mean. Not replicated: the server's
  warm-up (the auditor holds no warm-up data), client sampling (`strategy.fraction_train`) and client
  roles (DP, adversaries) — presets that audit with this recipe train every honest client every round.
"""

from __future__ import annotations

import logging

import torch

from fl_privacy.attacks.views import Trainer
from fl_privacy.config.schema import Settings
from fl_privacy.data.images import ImageDataset
from fl_privacy.data.partition import partition_indices
from fl_privacy.seeding import reference_client_seed
from fl_privacy.training import TrainSettings, train

log = logging.getLogger(__name__)


def central_trainer(settings: Settings) -> Trainer:
    """The lab's training loop with the auditor's own recipe."""
    recipe = TrainSettings.of(settings.attack.membership.training)

    def fit(model: torch.nn.Module, records: ImageDataset, seed: int) -> None:
        train(model, records, recipe, seed)

    return fit


def fedavg_mean(states: list[dict[str, torch.Tensor]], counts: list[int]) -> dict[str, torch.Tensor]:
    """The example-weighted mean of client weights (FedAvg's aggregation)."""
    weights = torch.tensor(counts, dtype=torch.float64) / sum(counts)
    return {name: torch.einsum("k,k...->...", weights.to(states[0][name].dtype),
                               torch.stack([state[name] for state in states]))
            for name in states[0]}


def federated_trainer(settings: Settings) -> Trainer:
    """FedAvg over the records partitioned like the target's clients, with the target's client recipe."""
    local = TrainSettings.of(settings.client)
    num_clients, rounds = settings.simulation.num_clients, settings.strategy.num_rounds

    def fit(model: torch.nn.Module, records: ImageDataset, seed: int) -> None:
        parts = partition_indices(records.labels.numpy(), num_clients, settings.partition, seed)
        clients = [records.subset(part) for part in parts if len(part)]
        for server_round in range(1, rounds + 1):
            sent = {name: value.clone() for name, value in model.state_dict().items()}
            states, counts = [], []
            for partition, data in enumerate(clients):
                model.load_state_dict(sent)
                train(model, data, local, reference_client_seed(seed, server_round, partition))
                states.append({name: value.clone() for name, value in model.state_dict().items()})
                counts.append(len(data))
            model.load_state_dict(fedavg_mean(states, counts))
        log.info("federated reference model: %d rounds over %d clients", rounds, len(clients))

    return fit


def reference_trainer(settings: Settings) -> Trainer:
    """The trainer of the auditor's shadow/reference models, by `attack.membership.training.recipe`."""
    if settings.attack.membership.training.recipe == "federated":
        return federated_trainer(settings)
    return central_trainer(settings)
