"""Image priors shared by the attacks that synthesise images (gradient inversion, the GAN attack)."""

from __future__ import annotations

import torch


def total_variation(images: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between horizontally and vertically neighbouring pixels (anisotropic TV)."""
    return ((images[..., :, 1:] - images[..., :, :-1]).abs().mean()
            + (images[..., 1:, :] - images[..., :-1, :]).abs().mean())
