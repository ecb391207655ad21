"""The one image-optimisation loop of the attacks that synthesise inputs (gradient inversion, representation
inversion): dummy images kept in [0, 1], minimised by L-BFGS or by Adam (optionally on signed gradients with
a step-decay schedule)."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from typing import Literal

import torch

from fl_privacy.progress import steps

log = logging.getLogger(__name__)

Bound = Literal["clamp", "sigmoid"]


class DummyImages:
    """Optimised images kept in [0, 1] by projection (`clamp`) or a sigmoid parametrisation."""

    def __init__(self, init: torch.Tensor, bound: Bound = "clamp") -> None:
        self.bound = bound
        start = init.clamp(1e-4, 1 - 1e-4).logit() if bound == "sigmoid" else init.clamp(0, 1)
        self.raw = start.clone().requires_grad_(True)

    def images(self) -> torch.Tensor:
        return torch.sigmoid(self.raw) if self.bound == "sigmoid" else self.raw

    def project(self) -> None:
        if self.bound == "clamp":
            with torch.no_grad():
                self.raw.clamp_(0, 1)


def _log(name: str, step: int, total: int, every: int, loss: float) -> None:
    if every and ((step + 1) % every == 0 or step + 1 == total):
        log.info("%s: iteration %d/%d, matching loss %.4g", name, step + 1, total, loss)


def lbfgs_descent(dummy: DummyImages, objective: Callable[[], torch.Tensor], *, iterations: int,
                  inner_iterations: int, lr: float, line_search: str | None = "strong_wolfe",
                  extra_variables: Sequence[torch.Tensor] = (), name: str = "L-BFGS",
                  show_progress: bool = False, log_every: int = 0) -> float:
    """Minimise `objective` over the images (and `extra_variables`, e.g. soft labels) with `iterations` outer
    L-BFGS steps of up to `inner_iterations` each, projecting the images after each; stops at the last finite
    images if the loss diverges. Returns the final objective."""
    optimizer = torch.optim.LBFGS([dummy.raw, *extra_variables], lr=lr, max_iter=inner_iterations,
                                  history_size=100, line_search_fn=line_search)

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = objective()
        loss.backward()
        return loss

    last_finite = dummy.raw.detach().clone()
    for step in steps(iterations, name, show_progress):
        loss = float(optimizer.step(closure).detach())
        dummy.project()
        _log(name, step, iterations, log_every, loss)
        if not (math.isfinite(loss) and torch.isfinite(dummy.raw).all()):
            log.warning("%s diverged at iteration %d (loss %s); keeping the last finite images",
                        name, step + 1, loss)
            with torch.no_grad():
                dummy.raw.copy_(last_finite)
            break
        last_finite = dummy.raw.detach().clone()
    return float(objective().detach())


def adam_descent(dummy: DummyImages,
                 objective: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]], *,
                 iterations: int, lr: float, milestones: Sequence[int] = (), signed: bool = False,
                 name: str = "Adam", show_progress: bool = False, log_every: int = 0,
                 patience: int | None = None, tolerance: float = 0.0) -> int:
    """Adam on the images for `iterations` steps, projecting after each. `objective(images)` returns the
    loss to minimise and the matching part to log; `signed` steps on the gradient's sign (Geiping et al.);
    the learning rate drops tenfold at each of `milestones`. With `patience`, stops early once the matching
    loss has not fallen below `(1 - tolerance)` x its best for `patience` steps (a plateau). Returns the
    number of steps taken."""
    optimizer = torch.optim.Adam([dummy.raw], lr=lr)
    schedule = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(milestones), gamma=0.1)
    best, since_best = math.inf, 0
    for step in steps(iterations, name, show_progress):
        optimizer.zero_grad()
        loss, match = objective(dummy.images())
        loss.backward(inputs=[dummy.raw])  # the images only: no second-order gradients of the weights
        if signed:
            assert dummy.raw.grad is not None
            dummy.raw.grad.sign_()
        optimizer.step()
        schedule.step()
        dummy.project()
        value = float(match.detach())
        _log(name, step, iterations, log_every, value)
        if patience is not None:
            best, since_best = (value, 0) if value < best * (1 - tolerance) else (best, since_best + 1)
            if since_best >= patience:
                log.info("%s: matching loss plateaued at %.4g; stopped after %d of %d iterations",
                         name, best, step + 1, iterations)
                return step + 1
    return iterations
