"""Canaries for the empirical DP audit: m records, each put into one client's data with probability ½.

- `mislabelled`: m images drawn out of the clients' pool (so no client holds them with their true label),
  each given a uniformly drawn wrong label;
- `ood`: m uniform-noise images with uniformly drawn labels, appended to the training split.

Which canaries are inserted (`included`) is the audit's truth: the federation carries it like every
other assignment of records, and only the lab's evaluation reads it (never the auditor's attack).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from fl_privacy.config.schema import CanarySettings
from fl_privacy.data.images import DataSplits, ImageDataset
from fl_privacy.seeding import Stream, derive_seed, stream_rng


@dataclass(frozen=True)
class Canaries:
    """The training split with the canaries in it, the clients' pool without them, every canary's index
    into that split, and which of them the target client holds."""

    splits: DataSplits
    pool: np.ndarray
    indices: np.ndarray
    included: np.ndarray


def draw_canaries(splits: DataSplits, pool: np.ndarray, settings: CanarySettings, seed: int) -> Canaries:
    """`settings.count` canaries of `settings.kind`, each included with probability ½ (seeded)."""
    rng, count, classes = stream_rng(seed, Stream.CANARIES), settings.count, splits.num_classes
    train = splits.train
    if settings.kind == "mislabelled":
        if count > len(pool) // 2:
            raise ValueError(f"data.canaries.count={count} is more than half of the clients' pool "
                             f"({len(pool)} records)")
        indices = np.sort(rng.choice(pool, count, replace=False))
        labels = train.labels.clone()
        shift = torch.from_numpy(rng.integers(1, classes, count))
        labels[indices] = (labels[indices] + shift) % classes
        train, pool = ImageDataset(train.images, labels), np.setdiff1d(pool, indices)
    else:
        generator = torch.Generator().manual_seed(derive_seed(seed, Stream.CANARIES, 1))
        noise = torch.rand((count, *train.images.shape[1:]), generator=generator, dtype=train.images.dtype)
        labels = torch.from_numpy(rng.integers(0, classes, count)).to(train.labels.dtype)
        indices = np.arange(len(train), len(train) + count)
        train = ImageDataset(torch.cat([train.images, noise]), torch.cat([train.labels, labels]))
    included = rng.random(count) < 0.5
    return Canaries(replace(splits, train=train), pool, indices, included)
