"""Gradient inversion: DLG / iDLG, Inverting Gradients and FedAvg-update inversion.

Each attack sees only a `CapturedUpdate` (what the server holds), the model architecture and its own
hyper-parameters. It optimises dummy images in [0, 1] until the update they would produce matches the
captured one. Labels are restored analytically from the same capture (`label_restoration`) or, in DLG's
original form, optimised as soft labels.

- DLG (Zhu et al. 2019): squared-L2 gradient distance, L-BFGS. With `label_mode="restore"` it is iDLG.
- Inverting Gradients (Geiping et al. 2020): cosine distance + total variation, Adam on signed gradients,
  step-decay schedule, several restarts (the one with the best matching loss wins).
- FedAvg inversion (Geiping et al. 2020, Sec. 5): the announced local training (`local_steps` SGD steps at
  `lr` in mini-batches of `batch_size`, a fresh order each epoch) is replayed differentiably on the dummy data
  (torch.func.functional_call) and the resulting weight delta is matched (cosine + TV with Adam, or DLG's
  squared distance with L-BFGS). The client's shuffling is unknowable, so it is part of the search: the first
  restart takes consecutive slices of the (label-sorted) dummy batch, every later restart its own random
  order per epoch (which restored labels share a mini-batch); the lowest matching loss wins. With
  full-batch local steps (one batch per epoch) order is irrelevant.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

import torch
from torch import nn
from torch.func import functional_call
from torch.nn import functional as F

from fl_privacy.attacks.image_optimisation import Bound, DummyImages, adam_descent, lbfgs_descent
from fl_privacy.attacks.label_restoration import LabelEstimator, last_linear_names, restore_labels
from fl_privacy.attacks.priors import total_variation
from fl_privacy.attacks.registry import inversion_attack
from fl_privacy.attacks.views import CapturedUpdate
from fl_privacy.config.schema import GradientInversionSettings

LabelMode = Literal["restore", "optimise"]
Tensors = list[torch.Tensor]


@dataclass(frozen=True)
class DummyInit:
    """Dummy images start at `center + spread * noise`, noise uniform in [-1, 1] or standard normal.

    The default is uniform in [0, 1]; DLG's original is `DummyInit("normal", 0.0, 1.0)`.
    """

    distribution: Literal["uniform", "normal"] = "uniform"
    center: float = 0.5
    spread: float = 0.5

    def sample(self, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
        """Draw one batch of initial dummy images."""
        if self.distribution == "uniform":
            noise = torch.rand(shape, generator=generator) * 2 - 1
        else:
            noise = torch.randn(shape, generator=generator)
        return self.center + self.spread * noise


@dataclass(frozen=True)
class _DummyOptimisation:
    """Settings every reconstruction shares: dummy init, how images stay in [0, 1], seed, progress."""

    init: DummyInit = DummyInit()
    bound: Bound = "clamp"
    seed: int = 0
    progress: bool = False


@dataclass(frozen=True)
class DLGConfig(_DummyOptimisation):
    """L-BFGS gradient matching. `iterations` outer steps of up to `inner_iterations` L-BFGS iterations."""

    iterations: int = 300
    inner_iterations: int = 20
    lr: float = 1.0
    line_search: Literal["strong_wolfe"] | None = "strong_wolfe"
    label_mode: LabelMode = "restore"
    log_every: int = 50


@dataclass(frozen=True)
class InvertingConfig(_DummyOptimisation):
    """Adam with cosine matching + a TV weight * total variation: `restarts` restarts at each of
    `tv_weights` (the same starts for every weight), the lowest matching loss over all of them wins."""

    iterations: int = 2000
    lr: float = 0.1
    tv_weights: tuple[float, ...] = (1e-4,)
    restarts: int = 2
    signed: bool = True
    lr_schedule: bool = True
    log_every: int = 500
    # stop a restart once its matching loss has not improved by `tolerance` (relative) for `patience` steps
    patience: int | None = None
    tolerance: float = 1e-3
    label_estimator: LabelEstimator = "counts"


def _common_options(attack: GradientInversionSettings, progress: bool) -> dict[str, Any]:
    """The options DLGConfig and InvertingConfig share, from `attack.gradient_inversion`."""
    return {"init": DummyInit(attack.init.distribution, attack.init.center, attack.init.spread),
            "bound": attack.bound, "seed": attack.seed, "progress": progress, "iterations": attack.iterations,
            "lr": attack.lr, "log_every": 0}


def dlg_options(attack: GradientInversionSettings, progress: bool = False) -> DLGConfig:
    """DLG's L-BFGS options from `attack.gradient_inversion`."""
    return DLGConfig(**_common_options(attack, progress), inner_iterations=attack.inner_iterations,
                     label_mode=attack.label_mode)


def inverting_options(attack: GradientInversionSettings, progress: bool = False) -> InvertingConfig:
    """Inverting Gradients' Adam options (cosine + TV, restarts) from `attack.gradient_inversion`."""
    return InvertingConfig(**_common_options(attack, progress), tv_weights=tuple(attack.tv_weight),
                           restarts=attack.restarts, patience=attack.early_stop_patience,
                           tolerance=attack.early_stop_tolerance, label_estimator=attack.label_estimator)


def no_options(attack: GradientInversionSettings, progress: bool = False) -> None:
    """For an attack that optimises nothing (label restoration, imprint)."""
    return None


def fedavg_options(attack: GradientInversionSettings, progress: bool = False) -> DLGConfig | InvertingConfig:
    """FedAvg inversion by L-BFGS or Adam, as `attack.gradient_inversion.optimizer` says."""
    return (dlg_options if attack.optimizer == "lbfgs" else inverting_options)(attack, progress)


@dataclass(frozen=True)
class Reconstruction:
    """Dummy images in [0, 1] (N x C x H x W; None for a label-only attack), their labels, and the final
    matching loss of each restart."""

    images: torch.Tensor | None
    labels: torch.Tensor
    loss: float
    restart_losses: tuple[float, ...]
    # every restart's images (same order as `restart_losses`), for attackers that choose among them
    candidates: tuple[torch.Tensor, ...] = ()
    # optimisation steps each restart took (fewer than the budget after an early stop on a plateau)
    iterations_run: tuple[int, ...] = ()
    # the TV weight of the winning restart (Inverting Gradients: chosen by matching loss, no truth used)
    tv_weight: float | None = None


class _Victim:
    """The captured global model as a pure function of its parameters (eval mode: no dropout)."""

    def __init__(self, model: nn.Module, payload: CapturedUpdate) -> None:
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.names = [name for name, _ in self.module.named_parameters()]
        self.params = {n: payload.global_state[n].clone().requires_grad_(True) for n in self.names}
        self.buffers = {n: payload.global_state[n] for n, _ in self.module.named_buffers()
                        if n in payload.global_state}

    def loss(self, params: dict[str, torch.Tensor], images: torch.Tensor,
             targets: torch.Tensor) -> torch.Tensor:
        logits = functional_call(self.module, {**params, **self.buffers}, (images,))
        return F.cross_entropy(logits, targets)

    def gradient(self, images: torch.Tensor, targets: torch.Tensor) -> Tensors:
        """The mean cross-entropy gradient the client would share, differentiable w.r.t. the inputs."""
        loss = self.loss(self.params, images, targets)
        return list(torch.autograd.grad(loss, list(self.params.values()), create_graph=True))

    def local_delta(self, images: torch.Tensor, targets: torch.Tensor, lr: float, steps: int,
                    batch_size: int, orders: Sequence[torch.Tensor] = ()) -> Tensors:
        """`w0 - wE` after `steps` SGD steps in mini-batches of `batch_size`, differentiably.

        A pass over the examples per epoch: epoch e visits them in `orders[e]` (a permutation), else in order.
        """
        params = dict(self.params)
        batches = math.ceil(len(images) / batch_size)
        for step in range(steps):
            epoch, window = divmod(step, batches)
            rows = torch.arange(len(images)) if epoch >= len(orders) else orders[epoch]
            rows = rows[window * batch_size:(window + 1) * batch_size]
            loss = self.loss(params, images[rows], targets[rows])
            grads = torch.autograd.grad(loss, list(params.values()), create_graph=True)
            params = {n: p - lr * g for (n, p), g in zip(params.items(), grads, strict=True)}
        return [self.params[n] - params[n] for n in self.names]


def replay(victim: _Victim, payload: CapturedUpdate, orders: torch.Generator | None = None) -> Simulate:
    """The announced local training of a FedAvg capture as a function of (dummy images, labels): consecutive
    mini-batches, or with `orders` one random order per epoch drawn from that generator (the attacker's
    guess at the client's shuffling)."""
    assert payload.lr is not None and payload.local_steps is not None  # a FedAvg capture
    lr, steps, size = float(payload.lr), int(payload.local_steps), payload.batch_size
    epochs = math.ceil(steps / math.ceil(payload.num_inputs / size))
    permutations = [] if orders is None else [torch.randperm(payload.num_inputs, generator=orders)
                                              for _ in range(epochs)]

    def simulate(images: torch.Tensor, labels: torch.Tensor) -> Tensors:
        return victim.local_delta(images, labels, lr, steps, size, permutations)

    return simulate


def matching_loss(model: nn.Module, payload: CapturedUpdate, candidate: torch.Tensor,
                  restored: torch.Tensor) -> float:
    """The cosine matching loss of candidate images with restored labels (Inverting Gradients' distance, no
    prior): the gradient they produce, or for FedAvg the consecutive-batch replay's weight delta, against the
    captured one."""
    victim = _Victim(model, payload)
    if payload.is_gradient:
        return float(cosine_distance(victim.gradient(candidate, restored),
                                     payload.effective_gradient(victim.names)).detach())
    return float(cosine_distance(replay(victim, payload)(candidate, restored),
                                 payload.weight_delta(victim.names)).detach())


def squared_distance(dummy: Tensors, observed: Tensors) -> torch.Tensor:
    """DLG's distance: the summed squared difference over all layers."""
    # the layers are not empty, so the sums are tensors (never sum's start value 0)
    return cast(torch.Tensor, sum(((d - o) ** 2).sum() for d, o in zip(dummy, observed, strict=True)))


def cosine_distance(dummy: Tensors, observed: Tensors) -> torch.Tensor:
    """Inverting Gradients' distance: 1 - cosine similarity of the concatenated per-layer tensors."""
    dot = sum((d * o).sum() for d, o in zip(dummy, observed, strict=True))
    dummy_norm = torch.sqrt(cast(torch.Tensor, sum((d * d).sum() for d in dummy)))
    observed_norm = torch.sqrt(cast(torch.Tensor, sum((o * o).sum() for o in observed)))
    return 1 - dot / (dummy_norm * observed_norm).clamp_min(1e-30)


def _lbfgs_options(config: DLGConfig) -> dict:
    return {"iterations": config.iterations, "inner_iterations": config.inner_iterations, "lr": config.lr,
            "line_search": config.line_search, "show_progress": config.progress,
            "log_every": config.log_every}


@inversion_attack("dlg", needs="gradient", options=dlg_options)
def dlg(model: nn.Module, payload: CapturedUpdate, config: DLGConfig = DLGConfig()) -> Reconstruction:
    """Deep Leakage from Gradients on a shared gradient (`label_mode="restore"` gives iDLG)."""
    if not payload.is_gradient:
        raise ValueError("dlg needs a gradient capture; use invert_fedavg for returned weights.")
    victim = _Victim(model, payload)
    observed = payload.effective_gradient(victim.names)
    generator = torch.Generator().manual_seed(config.seed)
    shape = (payload.num_inputs, *payload.input_shape)
    dummy = DummyImages(config.init.sample(shape, generator), config.bound)
    num_classes = payload.global_state[last_linear_names(model)[0]].shape[0]
    if config.label_mode == "restore":
        restored_labels, soft_labels = restore_labels(model, payload), []

        def targets() -> torch.Tensor:
            return restored_labels
    else:
        label_logits = torch.randn(payload.num_inputs, num_classes, generator=generator).requires_grad_(True)
        soft_labels = [label_logits]

        def targets() -> torch.Tensor:
            return F.softmax(label_logits, dim=-1)

    def objective() -> torch.Tensor:
        return squared_distance(victim.gradient(dummy.images(), targets()), observed)

    final = lbfgs_descent(dummy, objective, extra_variables=soft_labels, name="DLG", **_lbfgs_options(config))
    final_labels = targets().detach()
    final_labels = final_labels if final_labels.dim() == 1 else final_labels.argmax(-1)
    return Reconstruction(dummy.images().detach().clamp(0, 1), final_labels, final, (final,))


Simulate = Callable[[torch.Tensor, torch.Tensor], Tensors]


def _invert_by_restarts(name: str, payload: CapturedUpdate, restored_labels: torch.Tensor,
                        simulators: Callable[[int], Simulate], observed: Tensors,
                        config: InvertingConfig) -> Reconstruction:
    """Adam on cosine distance + TV from `config.restarts` random starts at each TV weight (restart r
    simulates the update with `simulators(r)`); keep the best matching loss, and every restart's images as
    candidates (TV-weight-major order)."""
    shape = (payload.num_inputs, *payload.input_shape)
    losses, candidates, iterations_run, weights = [], [], [], []
    milestones = [int(config.iterations * f) for f in (3 / 8, 5 / 8, 7 / 8)] if config.lr_schedule else []
    for tv_weight in config.tv_weights:
        generator = torch.Generator().manual_seed(config.seed)  # every weight starts from the same images
        for restart in range(config.restarts):
            simulate = simulators(restart)

            def objective(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
                match = cosine_distance(simulate(images, restored_labels), observed)  # noqa: B023 (called now)
                return match + tv_weight * total_variation(images), match  # noqa: B023 (called now)

            dummy = DummyImages(config.init.sample(shape, generator), config.bound)
            iterations_run.append(adam_descent(
                dummy, objective, iterations=config.iterations, lr=config.lr, milestones=milestones,
                signed=config.signed, name=f"{name} TV {tv_weight:g} restart {restart + 1}",
                show_progress=config.progress, log_every=config.log_every, patience=config.patience,
                tolerance=config.tolerance))
            final = cosine_distance(simulate(dummy.images(), restored_labels), observed)
            losses.append(float(final.detach()))
            candidates.append(dummy.images().detach().clamp(0, 1))
            weights.append(tv_weight)
    best = min(range(len(losses)), key=losses.__getitem__)
    return Reconstruction(candidates[best], restored_labels, losses[best], tuple(losses), tuple(candidates),
                          tuple(iterations_run), weights[best])


def inverting_gradients(model: nn.Module, payload: CapturedUpdate,
                        config: InvertingConfig = InvertingConfig()) -> Reconstruction:
    """Inverting Gradients on a shared gradient, labels restored analytically from the same gradient."""
    if not payload.is_gradient:
        raise ValueError("inverting_gradients needs a gradient capture; use invert_fedavg for weights.")
    victim = _Victim(model, payload)
    return _invert_by_restarts("InvertingGradients", payload,
                               restore_labels(model, payload, config.label_estimator),
                               lambda restart: victim.gradient, payload.effective_gradient(victim.names),
                               config)


@inversion_attack("fedavg", needs="weights", options=fedavg_options)
def invert_fedavg(model: nn.Module, payload: CapturedUpdate,
                  config: InvertingConfig | DLGConfig = InvertingConfig()) -> Reconstruction:
    """Invert a FedAvg update: match `w0 - wE` of simulated local SGD on dummy data to the captured delta.

    Labels are restored analytically (`restore_labels`). With an `InvertingConfig` the match is Geiping's
    cosine distance + TV with Adam and restarts; with a `DLGConfig` it is L-BFGS on the squared distance of
    the mean step `(w0 - wE) / (lr * steps)` (DLG's objective, scale-free in lr and steps).
    """
    if payload.is_gradient:
        raise ValueError("invert_fedavg needs returned weights (updated_state); use dlg/inverting_gradients.")
    victim = _Victim(model, payload)
    assert payload.lr is not None and payload.local_steps is not None  # checked by CapturedUpdate
    lr, steps = float(payload.lr), int(payload.local_steps)
    estimator = config.label_estimator if isinstance(config, InvertingConfig) else "counts"
    restored_labels = restore_labels(model, payload, estimator)
    simulate = replay(victim, payload)
    if isinstance(config, InvertingConfig):
        orders = torch.Generator().manual_seed(config.seed + 1)

        def simulators(restart: int) -> Simulate:
            return simulate if restart == 0 else replay(victim, payload, orders)

        return _invert_by_restarts("InvertFedAvg", payload, restored_labels, simulators,
                                   payload.weight_delta(victim.names), config)
    observed = payload.effective_gradient(victim.names)
    generator = torch.Generator().manual_seed(config.seed)
    dummy = DummyImages(config.init.sample((payload.num_inputs, *payload.input_shape), generator),
                        config.bound)

    def objective() -> torch.Tensor:
        mean_step = [d / (lr * steps) for d in simulate(dummy.images(), restored_labels)]
        return squared_distance(mean_step, observed)

    final = lbfgs_descent(dummy, objective, name="InvertFedAvg", **_lbfgs_options(config))
    return Reconstruction(dummy.images().detach().clamp(0, 1), restored_labels, final, (final,))


@inversion_attack("inverting", needs="any", options=inverting_options)
def inverting_any(model: nn.Module, payload: CapturedUpdate, config: InvertingConfig) -> Reconstruction:
    """Inverting Gradients on a shared gradient, or on a FedAvg update by replaying its local training."""
    if payload.is_gradient:
        return inverting_gradients(model, payload, config)
    return invert_fedavg(model, payload, config)


@inversion_attack("labels", needs="any", options=inverting_options)
def restore_labels_only(model: nn.Module, payload: CapturedUpdate, config: object = None) -> Reconstruction:
    """Label restoration alone (iDLG for one example, the configured counts for a batch): no images."""
    estimator = config.label_estimator if isinstance(config, InvertingConfig) else "counts"
    return Reconstruction(None, restore_labels(model, payload, estimator), float("nan"), ())
