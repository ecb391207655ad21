"""The federated audit's canary directions (Andrew et al., ICLR 2024, "One-shot empirical privacy
estimation for federated learning").

Canary j's update is one fixed random direction over the model's trainable parameters, unit norm over
all of them together, drawn from the `CANARY_CLIENTS` seed stream by its index: canary clients use their
partition id, the never-inserted ("fresh") canaries use `FRESH_OFFSET + j`, so the two never coincide.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from fl_privacy.seeding import Stream, derive_seed

FRESH_OFFSET = 1_000_000  # fresh canary j has index FRESH_OFFSET + j (partition ids stay far below)


def canary_direction(shapes: Mapping[str, torch.Size], seed: int, index: int) -> dict[str, torch.Tensor]:
    """Canary `index`'s unit direction (Gaussian, normalised over every tensor in `shapes` together)."""
    generator = torch.Generator().manual_seed(derive_seed(seed, Stream.CANARY_CLIENTS, index))
    parts = {name: torch.randn(shape, generator=generator, dtype=torch.float64)
             for name, shape in shapes.items()}
    norm = torch.cat([part.reshape(-1) for part in parts.values()]).norm()
    return {name: part / norm for name, part in parts.items()}


def flat_direction(shapes: Mapping[str, torch.Size], seed: int, index: int) -> torch.Tensor:
    """`canary_direction` as one flat float64 vector (tensors in the order of `shapes`)."""
    return torch.cat([part.reshape(-1) for part in canary_direction(shapes, seed, index).values()])
