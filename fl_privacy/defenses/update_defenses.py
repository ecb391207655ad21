"""Client-side defenses on what a client sends: update pruning and suppress-privacy training.

- Pruning (Zhu et al. 2019, "Deep Leakage from Gradients", §5): before sending, zero the `fraction`
  smallest-magnitude entries of each tensor of the update (the gradient in FedSGD, the weight change
  local − global in FedAvg).
- Suppress-privacy (MindArmour's `SuppressCtrl`): during local training the smallest weights of chosen
  layers are zeroed after every step, with a sparsity that grows by the cubic schedule
  s_t = s_end + (s_start − s_end)·(1 − (t − t₀)/T)³ over rounds t₀ … t₀ + T.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from fl_privacy.config.schema import SuppressSettings


def prune_smallest(tensor: torch.Tensor, fraction: float) -> torch.Tensor:
    """A copy of `tensor` with its `fraction` smallest-magnitude entries set to 0."""
    count = int(fraction * tensor.numel())
    if count == 0 or not tensor.is_floating_point():
        return tensor.clone()
    flat = tensor.flatten().clone()
    flat[flat.abs().argsort()[:count]] = 0
    return flat.view_as(tensor)


def prune_update(sent: dict[str, torch.Tensor], returned: dict[str, torch.Tensor], fraction: float,
                 is_gradient: bool) -> dict[str, torch.Tensor]:
    """Prune a reply: the gradient itself, or the change `returned − sent` of each weight tensor."""
    if is_gradient:
        return {name: prune_smallest(value, fraction) for name, value in returned.items()}
    return {name: sent[name] + prune_smallest(value - sent[name], fraction)
            if value.is_floating_point() else value for name, value in returned.items()}


@dataclass(frozen=True)
class SuppressSchedule:
    """Sparsity of the suppressed layers per round (`defense.suppress` in the config)."""

    start_round: int
    rounds: int
    start_sparsity: float
    end_sparsity: float
    layers: tuple[str, ...] = ()

    @classmethod
    def of(cls, suppress: SuppressSettings) -> SuppressSchedule:
        return cls(suppress.start_round, suppress.rounds, suppress.start_sparsity, suppress.end_sparsity,
                   tuple(suppress.layers))

    def sparsity(self, server_round: int) -> float:
        """s_t for round t: s_start before t₀, the cubic ramp in between, s_end after t₀ + T."""
        progress = min(max((server_round - self.start_round) / self.rounds, 0.0), 1.0)
        return self.end_sparsity + (self.start_sparsity - self.end_sparsity) * (1.0 - progress) ** 3

    def suppressed(self, model: nn.Module) -> list[nn.Parameter]:
        """The chosen layers' parameters (default: every weight matrix or kernel)."""
        named = dict(model.named_parameters())
        if self.layers:
            return [named[name] for name in self.layers]
        return [parameter for parameter in named.values() if parameter.dim() > 1]


def suppression_hook(schedule: SuppressSchedule, model: nn.Module, server_round: int
                     ) -> Callable[[], None] | None:
    """A step hook that zeroes the smallest weights of the suppressed layers to this round's sparsity."""
    sparsity = schedule.sparsity(server_round)
    if sparsity <= 0:
        return None
    parameters = schedule.suppressed(model)

    @torch.no_grad()
    def suppress() -> None:
        for parameter in parameters:
            parameter.copy_(prune_smallest(parameter, sparsity))

    return suppress
