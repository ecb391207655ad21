"""A deliberately broken DP-SGD optimizer: the audit's positive control (`+experiment=dp_audit_broken`).

`FaultyNoiseDPOptimizer` adds Gaussian noise of multiplier σ × `noise_factor` while everything else (the
accountant's step hook, the ledger, the reported ε) still sees σ: the bug of a DP implementation that
adds less noise than its accountant assumes. It exists so that the empirical audit can show it catches
such a bug (`violation: true`); `defense.dp.fault_noise_factor` = 1 (the default) never builds it.
"""

from __future__ import annotations

from typing import Any

from opacus.optimizers import DPOptimizer


class FaultyNoiseDPOptimizer(DPOptimizer):
    """Opacus's DPOptimizer whose noise is `noise_factor` × what `noise_multiplier` says (LAB-ONLY FAULT)."""

    noise_multiplier: float  # set by Opacus's DPOptimizer

    def __init__(self, *args: Any, noise_factor: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.noise_factor = noise_factor

    def add_noise(self) -> None:
        claimed = self.noise_multiplier
        self.noise_multiplier = claimed * self.noise_factor
        try:
            super().add_noise()
        finally:  # the step hook (the accountant) runs after this and must see the claimed σ
            self.noise_multiplier = claimed
