"""The strongest optimisation attacker per batch: run DLG and Inverting Gradients (with restarts) on the same
capture and keep, per batch, the reconstruction whose update matches the captured one best.

"Best" is judged by the attacker's own objective, never by the truth: every candidate is rescored with one
common distance, the cosine matching loss of Inverting Gradients without its image prior
(`gradient_inversion.matching_loss`; DLG's squared distance is in other units). For a FedAvg capture the
candidates are the L-BFGS and the Adam inversions of the replayed local training (`invert_fedavg`), whose
Adam restarts also try different guesses of the client's mini-batch order.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from torch import nn

from fl_privacy.attacks.gradient_inversion import (
    DLGConfig,
    InvertingConfig,
    Reconstruction,
    dlg,
    dlg_options,
    invert_fedavg,
    inverting_gradients,
    inverting_options,
    matching_loss,
)
from fl_privacy.attacks.registry import inversion_attack
from fl_privacy.attacks.views import CapturedUpdate
from fl_privacy.config.schema import GradientInversionSettings


@dataclass(frozen=True)
class BestMatchingConfig:
    """The candidates' settings: one DLG (L-BFGS) run and Inverting Gradients with its restarts."""

    dlg: DLGConfig
    inverting: InvertingConfig


def best_options(attack: GradientInversionSettings, progress: bool = False) -> BestMatchingConfig:
    """One DLG run of `best_dlg_iterations` L-BFGS steps at lr 1, and Inverting Gradients with the section's
    iterations, lr and restarts."""
    dlg_run = replace(dlg_options(attack, progress), iterations=attack.best_dlg_iterations, lr=1.0,
                      label_mode="restore")
    return BestMatchingConfig(dlg_run, inverting_options(attack, progress))


@inversion_attack("best", needs="any", options=best_options)
def best_matching(model: nn.Module, payload: CapturedUpdate, config: BestMatchingConfig) -> Reconstruction:
    """DLG and every Inverting Gradients restart on `payload`; returns the candidate with the lowest cosine
    matching loss (`restart_losses` and `candidates`: DLG first, then the restarts)."""
    if payload.is_gradient:
        first = dlg(model, payload, replace(config.dlg, label_mode="restore"))
        rest = inverting_gradients(model, payload, config.inverting)
    else:
        first = invert_fedavg(model, payload, config.dlg)
        rest = invert_fedavg(model, payload, config.inverting)
    assert first.images is not None and rest.candidates, "both attacks reconstruct images"
    losses = (matching_loss(model, payload, first.images, first.labels), *rest.restart_losses)
    candidates = (first.images, *rest.candidates)
    best = min(range(len(losses)), key=losses.__getitem__)
    return Reconstruction(candidates[best], rest.labels, losses[best], losses, candidates)
