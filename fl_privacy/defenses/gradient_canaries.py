"""White-box gradient-space (Dirac) canaries for the one-run audit of a client's DP-SGD (issue 29).

Nasr et al. 2023 ("Tight auditing of differentially private machine learning") audit DP-SGD with canaries
whose gradient is a fixed direction, observed by a white-box auditor who sees every privatised step;
Steinke, Nasr & Jagielski 2023 turn m such canaries into a one-run ε lower bound. Here:

- **The canary block** (`CanaryBlock`): an extra parameter vector φ ∈ R^m that the model's forward never
  uses. Canary i is a record whose per-sample gradient is the Dirac C·e_i on φ (norm exactly C, so
  clipping leaves it as it is; zero on the model's parameters θ), and every real record's gradient on φ
  is zero (its clipping is unchanged). Canary i is inserted with probability ½ (`dirac_inclusion`, the
  CANARIES seed stream); at every step each inserted canary is Poisson-sampled with the real records'
  rate q, and the sum of the sampled canaries' C·e_i is φ's clipped sum.
- **The optimizer** (`attach`): the client's own DP optimizer (Opacus's `DPOptimizer`, or the LAB-ONLY
  `FaultyNoiseDPOptimizer`), its class extended at run time by `DiracCanaryMixin`. After the real
  records' `clip_and_accumulate`, its own `add_noise` runs on θ (the same draws of the same generator as
  without the block, so θ trains exactly as without the audit) and then again on φ alone, with φ's own
  generator: whatever noise the optimizer adds (honest σ·C, or the faulty σ·C·factor) covers φ exactly as
  it covers θ. This is DP-SGD on (θ, φ) with the same q, σ and steps, so the accountant's ε covers the
  canaries.
- **The white-box observer** (`attacks.dirac_observer.WhiteBoxObserver`, any `StepObserver`): after every
  step it reads φ's privatised gradient and
  the public step constants (σ the accountant sees, C, q, the expected batch size) and adds each canary's
  log-likelihood ratio of "sampled with rate q" vs "absent" (the Neyman-Pearson statistic of one
  Poisson-subsampled Gaussian step; the plain count when σ = 0) to its score. It never sees which
  canaries were inserted: the bits stay with the block, and the lab's evaluation recomputes them from
  the seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from opacus.optimizers import DPOptimizer
from torch import nn

from fl_privacy.seeding import Stream, derive_seed, stream_rng


def dirac_inclusion(seed: int, count: int) -> np.ndarray:
    """Which of the `count` Dirac canaries are inserted (each with probability ½), from the run's seed:
    the audit's truth (the block uses it to insert, only the evaluation reads it to score)."""
    return stream_rng(seed, Stream.CANARIES, 2).random(count) < 0.5


class StepObserver(Protocol):
    """Who reads φ's privatised gradient after each step (the white-box auditor,
    `attacks.dirac_observer.WhiteBoxObserver`): the released values and the step's public constants only."""

    def observe(self, released: torch.Tensor, sigma: float, clip: float, scale: float,
                rate: float) -> None: ...


@dataclass
class CanaryBlock:
    """m Dirac canaries on an unused parameter φ ∈ R^m: which are inserted, their sampling and φ's noise
    generator, and the observer that reads φ's privatised gradient after each step."""

    included: torch.Tensor
    rate: float
    observer: StepObserver
    sampling: torch.Generator
    noise: torch.Generator
    phi: nn.Parameter = field(init=False)

    def __post_init__(self) -> None:
        self.phi = nn.Parameter(torch.zeros(len(self.included)))

    @classmethod
    def of(cls, included: np.ndarray, rate: float, observer: StepObserver, seed: int) -> CanaryBlock:
        """A block for `included` canaries at sampling rate `rate`; `seed` drives the canaries' Poisson
        sampling and φ's noise (two streams independent of the real records' and of θ's noise)."""
        return cls(torch.from_numpy(np.asarray(included, dtype=bool)), rate, observer,
                   torch.Generator().manual_seed(derive_seed(seed, Stream.CANARIES, 3)),
                   torch.Generator().manual_seed(derive_seed(seed, Stream.DP_NOISE, 1)))

    def clipped_sum(self, clip: float) -> torch.Tensor:
        """φ's clipped gradient sum of one step: C·e_i for each inserted canary sampled (rate q) this step."""
        sampled = self.included & (torch.rand(len(self.included), generator=self.sampling) < self.rate)
        return clip * sampled.to(self.phi.dtype)


class DiracCanaryMixin:
    """Put in front of a `DPOptimizer` class by `attach`: φ's canary sum joins after the real records'
    clipping, the optimizer's own `add_noise` noises it, and the observer reads it after each step."""

    canary_block: CanaryBlock
    _only: list[nn.Parameter] | None = None

    @property
    def params(self) -> list[nn.Parameter]:
        """The optimizer's parameters (θ), or φ alone while φ is being noised."""
        return super().params if self._only is None else self._only  # type: ignore[misc]

    def add_noise(self) -> None:
        optimizer: Any = self
        super().add_noise()  # type: ignore[misc]  # θ: the optimizer's own noise and generator, as without φ
        block = self.canary_block
        block.phi.summed_grad = block.clipped_sum(optimizer.max_grad_norm)  # type: ignore[attr-defined]
        generator, optimizer.generator, self._only = optimizer.generator, block.noise, [block.phi]
        try:
            super().add_noise()  # type: ignore[misc]  # the same noise code on φ (honest or faulty)
        finally:
            optimizer.generator, self._only = generator, None

    def scale_grad(self) -> None:
        optimizer: Any = self
        super().scale_grad()  # type: ignore[misc]
        if optimizer.loss_reduction == "mean":
            self.canary_block.phi.grad /= optimizer.expected_batch_size * optimizer.accumulated_iterations

    def pre_step(self, closure: Any = None) -> bool:
        optimizer: Any = self
        stepped = super().pre_step(closure)  # type: ignore[misc]
        if stepped:  # a released step: the white-box auditor reads φ's privatised gradient
            block = self.canary_block
            assert block.phi.grad is not None
            scale = optimizer.expected_batch_size if optimizer.loss_reduction == "mean" else 1
            block.observer.observe(block.phi.grad, optimizer.noise_multiplier, optimizer.max_grad_norm,
                                   scale, block.rate)
        return bool(stepped)


_CLASSES: dict[type, type] = {}


def attach(optimizer: DPOptimizer, block: CanaryBlock) -> DPOptimizer:
    """`optimizer` (any Opacus `DPOptimizer` with fixed clipping) made to train the canary block too."""
    base = type(optimizer)
    if base not in _CLASSES:
        _CLASSES[base] = type(f"DiracCanary{base.__name__}", (DiracCanaryMixin, base), {})
    optimizer.__class__ = _CLASSES[base]
    optimizer.canary_block = block
    return optimizer
