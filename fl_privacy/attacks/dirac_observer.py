"""The white-box auditor of Dirac gradient canaries (`defenses.gradient_canaries`, issue 29).

The DP-SGD threat model releases every noisy step. After each step this auditor reads the privatised gradient
of the canary block φ (one coordinate per canary) and the step's public constants, and adds each canary's
log-likelihood ratio of "in the step's Poisson sample with rate q" against "absent" to its score: with
x = released·B/C ~ N(b, σ²), b ∈ {0, 1},

    log [(1 − q) N(x; 0, σ²) + q N(x; 1, σ²)] / N(x; 0, σ²) = log(1 − q + q·exp((x − ½)/σ²)),

the Neyman-Pearson statistic of one Poisson-subsampled Gaussian step (summed over the steps); with σ = 0 it
adds x (the count of steps that sampled the canary). It never sees which canaries were inserted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass
class WhiteBoxObserver:
    """The white-box auditor of the canary block: one score per canary, accumulated over every DP-SGD
    step it observes (higher = more likely inserted)."""

    scores: torch.Tensor
    steps: int = 0

    @classmethod
    def fresh(cls, count: int) -> WhiteBoxObserver:
        return cls(torch.zeros(count, dtype=torch.float64))

    def observe(self, released: torch.Tensor, sigma: float, clip: float, scale: float, rate: float) -> None:
        """One step's privatised gradient of φ (`released` = (Σ sampled canaries' C·e_i + noise) / `scale`),
        with the step's public constants: noise multiplier σ, clipping bound C, the optimizer's divisor
        `scale` (the expected batch size) and the sampling rate q."""
        x = released.detach().to(torch.float64) * scale / clip  # ~ N(b_i, σ²), b_i ∈ {0, 1}
        if sigma == 0:
            self.scores += x
        else:  # log [(1 − q) N(x; 0, σ²) + q N(x; 1, σ²)] / N(x; 0, σ²)
            self.scores += torch.logaddexp(torch.full_like(x, math.log1p(-rate)),
                                           math.log(rate) + (x - 0.5) / sigma ** 2)
        self.steps += 1
