"""Adaptive decay of the DP-SGD noise multiplier per step (MindArmour's `NoiseAdaGaussianRandom` family).

- `time`: σ_{t+1} = σ₀ / (σ₀/σ_t + r)
- `step`: σ_{t+1} = (1 − r)·σ_t
- `exp`:  σ_{t+1} = σ_t·e^{−r}
- `constant`: σ_{t+1} = σ_t

Each step is accounted at its own σ (the accountant composes every step separately).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

NOISE_SCHEDULES = ("constant", "time", "step", "exp")


@dataclass(frozen=True)
class NoiseSchedule:
    """How σ decays from one optimizer step to the next."""

    name: str = "constant"
    rate: float = 0.0

    def next(self, sigma: float, initial: float) -> float:
        """σ_{t+1} from σ_t (`sigma`) and σ₀ (`initial`)."""
        if self.name == "time":
            return initial / (initial / sigma + self.rate) if sigma > 0 else 0.0
        if self.name == "step":
            return (1.0 - self.rate) * sigma
        if self.name == "exp":
            return sigma * math.exp(-self.rate)
        return sigma

    def sigmas(self, initial: float, steps: int, start: float | None = None) -> list[float]:
        """σ of `steps` consecutive steps starting from σ = `start` (default σ₀)."""
        sigma, out = initial if start is None else start, []
        for _ in range(steps):
            out.append(sigma)
            sigma = self.next(sigma, initial)
        return out
