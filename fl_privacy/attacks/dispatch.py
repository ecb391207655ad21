"""Pick an attack by name and build its settings from a plain mapping (an `attack` config node)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from fl_privacy.attacks.gradient_inversion import (
    DLGConfig,
    DummyInit,
    InvertingConfig,
    Reconstruction,
    dlg,
    invert_fedavg,
    inverting_gradients,
)
from fl_privacy.attacks.label_restoration import restore_labels
from fl_privacy.attacks.payload import CapturedUpdate

Settings = DLGConfig | InvertingConfig


def restore_labels_only(model: nn.Module, payload: CapturedUpdate, settings: Settings) -> Reconstruction:
    """Label restoration alone (iDLG for one example, zero-shot counts for a batch): no images."""
    return Reconstruction(None, restore_labels(model, payload), float("nan"), ())


# name -> (attack, which payload it needs: "gradient" | "weights" | "any")
ATTACKS: dict[str, tuple[Callable[[nn.Module, CapturedUpdate, Any], Reconstruction], str]] = {
    "dlg": (dlg, "gradient"),
    "inverting": (inverting_gradients, "gradient"),
    "fedavg": (invert_fedavg, "weights"),
    "labels": (restore_labels_only, "any"),
}
OPTIMIZERS = ("lbfgs", "adam")
FIXED_OPTIMIZER = {"dlg": "lbfgs", "inverting": "adam"}  # fedavg takes `optimizer` from the config


def attack_settings(name: str, options: Mapping[str, Any], progress: bool = False) -> Settings:
    """DLGConfig (L-BFGS) or InvertingConfig (Adam, cosine + TV) for attack `name` from the `attack` keys."""
    init = DummyInit(**dict(options["init"]))
    common = {"init": init, "bound": options["bound"], "seed": int(options["seed"]), "progress": progress,
              "iterations": int(options["iterations"]), "lr": float(options["lr"]), "log_every": 0}
    if FIXED_OPTIMIZER.get(name, options["optimizer"]) == "lbfgs":
        return DLGConfig(**common, inner_iterations=int(options["inner_iterations"]),
                         label_mode=options["label_mode"])
    return InvertingConfig(**common, tv_weight=float(options["tv_weight"]), restarts=int(options["restarts"]))


def run_attack(name: str, model: nn.Module, payload: CapturedUpdate, settings: Settings) -> Reconstruction:
    """Run attack `name` on one captured update; the payload kind must fit the attack."""
    attack, needs = ATTACKS[name]
    kind = "gradient" if payload.is_gradient else "weights"
    if needs not in ("any", kind):
        raise ValueError(f"attack {name!r} needs a {needs} capture, got {kind} "
                         "(client.update_mode=fedsgd sends gradients, fedavg sends weights)")
    with torch.random.fork_rng():
        return attack(model, payload, settings)
