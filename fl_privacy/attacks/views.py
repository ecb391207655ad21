"""What each attacker sees, and nothing more: one frozen view per threat model.

- `CapturedUpdate`: the honest-but-curious server's capture of one client update in one round;
- `InsiderView`: an adversarial client's round: its own records, the global model it received, the round
  and the accuracy the server announced (never the federation, other clients' data or the test split);
- `AuditorView`: the membership auditor's inputs: query access to the target model, candidate records,
  population records and its recipe for reference models (never who is a member);
- `UpdateAuditorView`: the honest-but-curious server as a membership attacker: one captured update of a
  client and the candidate records it asks about (never which of them the client holds).
Attack functions take one of these; the ground truth never enters them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from fl_privacy.data.images import ImageDataset

# trains a fresh model in place on the records, with a seed for batch order and dropout
Trainer = Callable[[nn.Module, ImageDataset, int], None]
# a freshly initialised model of the target's architecture, its init drawn from the seed
ModelFactory = Callable[[int], nn.Module]


def _plain_copy(tensors: Mapping[str, torch.Tensor] | None) -> dict[str, torch.Tensor] | None:
    """Detached plain-tensor copies: no autograd graph or tensor subclass leads back to the client's data."""
    if tensors is None:
        return None
    return {name: t.detach().as_subclass(torch.Tensor).clone() for name, t in tensors.items()}


@dataclass(frozen=True)
class CapturedUpdate:
    """The server's view of one client update.

    `global_state` is the state_dict the server sent. The client returns either its `gradient`
    (FedSGD: parameter name -> mean cross-entropy gradient over `batch_size` examples) or its
    `updated_state` after `local_steps` plain SGD steps with learning rate `lr` over `num_examples`
    examples in batches of `batch_size` (FedAvg). `input_shape` (C, H, W) is part of the task definition.
    """

    global_state: Mapping[str, torch.Tensor]
    input_shape: tuple[int, int, int]
    batch_size: int
    num_examples: int
    gradient: Mapping[str, torch.Tensor] | None = None
    updated_state: Mapping[str, torch.Tensor] | None = None
    lr: float | None = None
    local_steps: int | None = None

    def __post_init__(self) -> None:
        if (self.gradient is None) == (self.updated_state is None):
            raise ValueError("CapturedUpdate needs exactly one of `gradient` (FedSGD) "
                             "or `updated_state` (FedAvg).")
        if self.updated_state is not None and (self.lr is None or not self.local_steps):
            raise ValueError("A FedAvg capture needs the announced `lr` and `local_steps` (> 0).")
        for name in ("global_state", "gradient", "updated_state"):
            object.__setattr__(self, name, _plain_copy(getattr(self, name)))
        object.__setattr__(self, "input_shape", tuple(int(s) for s in self.input_shape))

    @property
    def is_gradient(self) -> bool:
        """True for a shared gradient (FedSGD), False for returned weights (FedAvg)."""
        return self.gradient is not None

    @property
    def num_inputs(self) -> int:
        """How many training examples produced the update (what an attack reconstructs)."""
        return self.batch_size if self.is_gradient else self.num_examples

    def weight_delta(self, names: list[str]) -> list[torch.Tensor]:
        """`global - updated` for each parameter in `names` (FedAvg captures only)."""
        if self.updated_state is None:
            raise ValueError("weight_delta needs a FedAvg capture (updated_state), not a gradient.")
        return [self.global_state[n] - self.updated_state[n] for n in names]

    def effective_gradient(self, names: list[str]) -> list[torch.Tensor]:
        """The shared gradient, or for FedAvg the mean step direction `(global - updated) / (lr * steps)`."""
        if self.gradient is not None:
            return [self.gradient[n] for n in names]
        assert self.lr is not None and self.local_steps is not None  # a FedAvg capture, see __post_init__
        scale = 1.0 / (float(self.lr) * int(self.local_steps))
        return [d * scale for d in self.weight_delta(names)]


@dataclass(frozen=True)
class InsiderView:
    """An adversarial client's view of one round. `model` is the received global model, which the
    adversary trains in place as its (honest-looking) local update; `fake_class` is the extra output."""

    own_data: ImageDataset
    model: nn.Module
    server_round: int
    announced_accuracy: float | None
    fake_class: int


@dataclass(frozen=True)
class AuditorView:
    """The membership auditor's inputs: the target model (queried for logits), the shuffled candidates,
    population records disjoint from them, and how to build and train its shadow/reference models."""

    target: nn.Module
    candidates: ImageDataset
    population: ImageDataset
    model_fn: ModelFactory
    trainer: Trainer


@dataclass(frozen=True)
class UpdateAuditorView:
    """The server's membership attack on one client's round: the captured update (the global weights it
    sent, the weights the client returned), the candidate records and the architecture to load them into."""

    update: CapturedUpdate
    candidates: ImageDataset
    model_fn: ModelFactory
