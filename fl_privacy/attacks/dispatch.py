"""Pick a gradient-inversion attack by name and build its optimiser settings from
`attack.gradient_inversion`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypedDict

import torch
from torch import nn

from fl_privacy.attacks.best_matching import BestMatchingConfig, best_matching
from fl_privacy.attacks.gradient_inversion import (
    DLGConfig,
    DummyInit,
    InvertingConfig,
    Reconstruction,
    dlg,
    invert_fedavg,
    inverting_gradients,
)
from fl_privacy.attacks.image_optimisation import Bound
from fl_privacy.attacks.imprint import imprint_attack
from fl_privacy.attacks.label_restoration import restore_labels
from fl_privacy.attacks.views import CapturedUpdate
from fl_privacy.config.schema import GradientInversionSettings

AttackConfig = DLGConfig | InvertingConfig | BestMatchingConfig


class _CommonOptions(TypedDict):
    """The settings DLGConfig and InvertingConfig share."""

    init: DummyInit
    bound: Bound
    seed: int
    progress: bool
    iterations: int
    lr: float
    log_every: int


def restore_labels_only(model: nn.Module, payload: CapturedUpdate, settings: AttackConfig) -> Reconstruction:
    """Label restoration alone (iDLG for one example, the configured counts for a batch): no images."""
    estimator = settings.label_estimator if isinstance(settings, InvertingConfig) else "counts"
    return Reconstruction(None, restore_labels(model, payload, estimator), float("nan"), ())


def inverting_any(model: nn.Module, payload: CapturedUpdate, settings: InvertingConfig) -> Reconstruction:
    """Inverting Gradients on a shared gradient, or on a FedAvg update by replaying its local training."""
    if payload.is_gradient:
        return inverting_gradients(model, payload, settings)
    return invert_fedavg(model, payload, settings)


# name -> (attack, which payload it needs: "gradient" | "weights" | "any")
ATTACKS: dict[str, tuple[Callable[[nn.Module, CapturedUpdate, Any], Reconstruction], str]] = {
    "dlg": (dlg, "gradient"),
    "inverting": (inverting_any, "any"),
    "fedavg": (invert_fedavg, "weights"),
    "labels": (restore_labels_only, "any"),
    "imprint": (imprint_attack, "any"),
    "best": (best_matching, "any"),
}
FIXED_OPTIMIZER = {"dlg": "lbfgs", "inverting": "adam"}  # fedavg takes `optimizer` from the config


def _inverting(attack: GradientInversionSettings, common: _CommonOptions) -> InvertingConfig:
    return InvertingConfig(**common, tv_weight=attack.tv_weight, restarts=attack.restarts,
                           patience=attack.early_stop_patience, tolerance=attack.early_stop_tolerance,
                           label_estimator=attack.label_estimator)


def attack_settings(attack: GradientInversionSettings, progress: bool = False) -> AttackConfig:
    """DLGConfig (L-BFGS), InvertingConfig (Adam, cosine + TV) or both (`best`) for `attack.name`."""
    init = DummyInit(attack.init.distribution, attack.init.center, attack.init.spread)
    common: _CommonOptions = {"init": init, "bound": attack.bound, "seed": attack.seed, "progress": progress,
                              "iterations": attack.iterations, "lr": attack.lr, "log_every": 0}
    if attack.name == "best":
        return BestMatchingConfig(
            DLGConfig(**common | {"iterations": attack.best_dlg_iterations, "lr": 1.0},
                      inner_iterations=attack.inner_iterations),
            _inverting(attack, common))
    if attack.name != "labels" and FIXED_OPTIMIZER.get(attack.name, attack.optimizer) == "lbfgs":
        return DLGConfig(**common, inner_iterations=attack.inner_iterations, label_mode=attack.label_mode)
    return _inverting(attack, common)


def run_attack(name: str, model: nn.Module, payload: CapturedUpdate, settings: AttackConfig
               ) -> Reconstruction:
    """Run attack `name` on one captured update; the payload kind must fit the attack."""
    attack, needs = ATTACKS[name]
    kind = "gradient" if payload.is_gradient else "weights"
    if needs not in ("any", kind):
        raise ValueError(f"attack {name!r} needs a {needs} capture, got {kind} "
                         "(client.update_mode=fedsgd sends gradients, fedavg sends weights)")
    with torch.random.fork_rng():
        return attack(model, payload, settings)
