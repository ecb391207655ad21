"""Inverting Gradients on many captured gradients at once: one batched optimisation problem.

Every (capture, TV weight, restart) triple is one problem: its dummy images, its restored labels, its
observed gradient, its TV weight and its model weights (the global model the capture was computed on). The
matching objective of one problem (cosine distance of the dummy gradient to the observed one + its TV weight
x total variation) is written for a single problem with `torch.func` (`functional_call` for the model, `grad`
for the dummy gradient) and mapped over all problems with `vmap`, so one call does the forward, the double
backward and the image gradient of all of them. Captures of one round share the global model: the weights
then enter unbatched (`in_dims=None`) and the network runs once on the stacked images; captures with
different weights are stacked along the problem axis. Adam is element-wise, so one Adam on the stacked
images is one Adam per problem; the signed gradient, the step-decay schedule and the [0, 1] box are the
loop's (`inverting_gradients`). Each problem stops on its own matching-loss plateau (its images frozen from
then on); the best restart of each capture (over its TV weights) by matching loss wins. Everything runs on
`device`.

Gradient captures of the same image shape, batch size and global model (a round's) are batched together
(`invert_many` groups them: a shared model runs once on the stacked images, 1.17x the throughput of the same
captures stacked with their weights on one CPU core, docs/gradient_inversion.md); FedAvg captures go through
the one-capture loop (`invert_fedavg`).
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.func import functional_call, grad, vmap
from torch.nn import functional as F

from fl_privacy.attacks.gradient_inversion import (
    InvertingConfig,
    Reconstruction,
    invert_fedavg,
    inverting_gradients,
)
from fl_privacy.attacks.label_restoration import restore_labels
from fl_privacy.attacks.priors import total_variation
from fl_privacy.attacks.views import CapturedUpdate

log = logging.getLogger(__name__)

Params = dict[str, torch.Tensor]


class BatchedObjective:
    """The per-problem IG objective, vmapped over problems. `params`/`observed` hold one entry per problem
    (leading axis) unless `shared_params`, when the model weights are the same for every problem;
    `tv_weights` holds one TV weight per problem."""

    def __init__(self, model: nn.Module, params: Params, buffers: Params, observed: Params,
                 labels: torch.Tensor, tv_weights: torch.Tensor, shared_params: bool) -> None:
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.params, self.buffers, self.observed, self.labels = params, buffers, observed, labels
        self.tv_weights = tv_weights
        param_dims = None if shared_params else 0
        self._value_and_image_grad = vmap(grad(self._single, argnums=0, has_aux=True),
                                          in_dims=(0, 0, param_dims, 0, 0))
        self._match = vmap(self._single_match, in_dims=(0, 0, param_dims, 0))

    def _dummy_gradient(self, images: torch.Tensor, labels: torch.Tensor, params: Params) -> Params:
        def loss(weights: Params) -> torch.Tensor:
            logits = functional_call(self.module, {**weights, **self.buffers}, (images,))
            return F.cross_entropy(logits, labels)

        return grad(loss)(params)

    def _single_match(self, images: torch.Tensor, labels: torch.Tensor, params: Params,
                      observed: Params) -> torch.Tensor:
        dummy = self._dummy_gradient(images, labels, params)
        dot = torch.stack([(dummy[n] * observed[n]).sum() for n in observed]).sum()
        dummy_norm = torch.stack([(dummy[n] * dummy[n]).sum() for n in observed]).sum().sqrt()
        observed_norm = torch.stack([(observed[n] * observed[n]).sum() for n in observed]).sum().sqrt()
        return 1 - dot / (dummy_norm * observed_norm).clamp_min(1e-30)

    def _single(self, images: torch.Tensor, labels: torch.Tensor, params: Params, observed: Params,
                tv_weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        match = self._single_match(images, labels, params, observed)
        return match + tv_weight * total_variation(images), match.detach()

    def image_gradient(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(gradient of every problem's objective w.r.t. its images, every problem's matching loss)."""
        return self._value_and_image_grad(images, self.labels, self.params, self.observed, self.tv_weights)

    def matching_loss(self, images: torch.Tensor) -> torch.Tensor:
        """Every problem's cosine matching loss (no prior)."""
        with torch.no_grad():
            return self._match(images, self.labels, self.params, self.observed)


def _equal_weights(a: CapturedUpdate, b: CapturedUpdate, names: Sequence[str]) -> bool:
    return all(torch.equal(a.global_state[n], b.global_state[n]) for n in names)


def _same_weights(payloads: Sequence[CapturedUpdate], names: Sequence[str]) -> bool:
    return all(_equal_weights(payloads[0], p, names) for p in payloads[1:])


def _weight_groups(payloads: Sequence[CapturedUpdate], names: Sequence[str]) -> list[list[int]]:
    """Positions of `payloads` grouped by equal global weights (first-seen order)."""
    groups: list[list[int]] = []
    for position, payload in enumerate(payloads):
        home = next((g for g in groups if _equal_weights(payloads[g[0]], payload, names)), None)
        if home is None:
            groups.append([position])
        else:
            home.append(position)
    return groups


def invert_gradients_batched(model: nn.Module, payloads: Sequence[CapturedUpdate], config: InvertingConfig,
                             device: torch.device | str = "cpu") -> list[Reconstruction]:
    """Inverting Gradients on gradient captures of one image shape and batch size, as one problem of
    `len(payloads) x len(config.tv_weights) x config.restarts` sub-problems; one `Reconstruction` per
    capture, in order."""
    if not payloads:
        return []
    if any(not p.is_gradient for p in payloads):
        raise ValueError("invert_gradients_batched needs gradient captures; use invert_fedavg for weights")
    shapes = {(p.num_inputs, *p.input_shape) for p in payloads}
    if len(shapes) != 1:
        raise ValueError(f"batch the captures of one batch size and image shape, got {sorted(shapes)}")
    device = torch.device(device)
    shape = shapes.pop()
    count, weights = len(payloads), len(config.tv_weights)
    per_capture = weights * config.restarts  # problems
    names = [name for name, _ in model.named_parameters()]
    buffer_names = [name for name, _ in model.named_buffers()]
    labels = [restore_labels(model, p, config.label_estimator) for p in payloads]
    starts = []
    for _ in range(count * weights):  # as the loop draws: one generator per capture and weight
        generator = torch.Generator().manual_seed(config.seed)
        starts += [config.init.sample(shape, generator).clamp(0, 1) for _ in range(config.restarts)]
    tv_weights = torch.tensor(config.tv_weights).repeat_interleave(config.restarts).repeat(count)

    def per_problem(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
        return torch.stack(list(tensors)).repeat_interleave(per_capture, dim=0).to(device)

    shared = _same_weights(payloads, names)
    if shared:
        params = {n: payloads[0].global_state[n].to(device) for n in names}
    else:
        params = {n: per_problem([p.global_state[n] for p in payloads]) for n in names}
    buffers = {n: payloads[0].global_state[n].to(device) for n in buffer_names
               if n in payloads[0].global_state}
    observed_lists = [p.effective_gradient(names) for p in payloads]
    observed = {n: per_problem([o[i] for o in observed_lists]) for i, n in enumerate(names)}
    objective = BatchedObjective(model, params, buffers, observed, per_problem(labels), tv_weights.to(device),
                                 shared)

    images = torch.stack(starts).to(device).requires_grad_(True)
    iterations_run = _adam(objective, images, config, log_name=f"batched IG ({count} captures)")
    final = images.detach()
    losses = objective.matching_loss(final).cpu().view(count, per_capture)
    candidates = final.cpu().clamp(0, 1).view(count, per_capture, *shape)
    steps_taken = torch.as_tensor(iterations_run).view(count, per_capture)
    results = []
    for k in range(count):
        best = int(losses[k].argmin())
        results.append(Reconstruction(candidates[k, best], labels[k], float(losses[k, best]),
                                      tuple(losses[k].tolist()), tuple(candidates[k]),
                                      tuple(int(s) for s in steps_taken[k]),
                                      config.tv_weights[best // config.restarts]))
    return results


def _adam(objective: BatchedObjective, images: torch.Tensor, config: InvertingConfig, log_name: str
          ) -> list[int]:
    """Signed Adam with the step-decay schedule on the stacked images, boxed to [0, 1]; each problem
    freezes on its own plateau. Returns each problem's steps."""
    optimizer = torch.optim.Adam([images], lr=config.lr)
    milestones = [int(config.iterations * f) for f in (3 / 8, 5 / 8, 7 / 8)] if config.lr_schedule else []
    schedule = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=0.1)
    problems = len(images)
    best = torch.full((problems,), math.inf, device=images.device)
    since_best = torch.zeros(problems, dtype=torch.long, device=images.device)
    active = torch.ones(problems, dtype=torch.bool, device=images.device)
    steps = torch.full((problems,), config.iterations, dtype=torch.long)
    for step in range(config.iterations):
        frozen = images.detach()[~active].clone() if not bool(active.all()) else None
        gradient, match = objective.image_gradient(images.detach())
        images.grad = gradient.sign() if config.signed else gradient
        optimizer.step()
        schedule.step()
        with torch.no_grad():
            images.clamp_(0, 1)
            if frozen is not None:
                images[~active] = frozen
        if config.log_every and ((step + 1) % config.log_every == 0 or step + 1 == config.iterations):
            log.info("%s: iteration %d/%d, median matching loss %.4g", log_name, step + 1, config.iterations,
                     float(match.median()))
        if config.patience is not None:
            improved = match < best * (1 - config.tolerance)
            best = torch.where(improved, match, best)
            since_best = torch.where(improved, 0, since_best + 1)
            stopping = active & (since_best >= config.patience)
            if bool(stopping.any()):
                steps[stopping.cpu()] = step + 1
                active &= ~stopping
                if not bool(active.any()):
                    break
    return steps.tolist()


def invert_many(model: nn.Module, payloads: Sequence[CapturedUpdate], config: InvertingConfig,
                device: torch.device | str = "cpu", batched: bool = True) -> list[Reconstruction]:
    """Inverting Gradients on every capture: gradient captures batched by (batch size, image shape, global
    weights) (or, with `batched=False`, one at a time by the loop: faster on a CPU), FedAvg captures one at a
    time by replay; results in the captures' order."""
    results: list[Reconstruction | None] = [None] * len(payloads)
    shapes: dict[tuple[int, ...], list[int]] = {}
    for index, payload in enumerate(payloads):
        if payload.is_gradient and batched:
            shapes.setdefault((payload.num_inputs, *payload.input_shape), []).append(index)
        else:
            one_capture = inverting_gradients if payload.is_gradient else invert_fedavg
            with torch.random.fork_rng():
                results[index] = one_capture(model, payload, config)
    names = [name for name, _ in model.named_parameters()]
    for same_shape in shapes.values():
        for positions in _weight_groups([payloads[i] for i in same_shape], names):
            indices = [same_shape[p] for p in positions]
            batch = invert_gradients_batched(model, [payloads[i] for i in indices], config, device)
            for index, reconstruction in zip(indices, batch, strict=True):
                results[index] = reconstruction
    return [r for r in results if r is not None]
