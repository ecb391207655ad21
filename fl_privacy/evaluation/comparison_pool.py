"""The comparison pool of identification: every image of the data set that is not in the truth batch.

A reconstruction is identified when it is nearer its own truth than every pool image of the truth's class
(`evaluation.identification`). A guess of the right class that ignores the gradient passes that rule about
batch / (pool + 1) of the time (the matching lets each true image take the nearest of the batch's guesses),
so the pool must be large: the held-out test split alone (~100 a class for the offline MNIST) lets a
label-only guess pass ~0.09 of a 16-image one-class batch. The pool here is the test split *and* every
training image outside the batch (other clients', the warm-up set's and the same client's other images):
~480 a class for the offline default. The batch's own images are left out by content (an exact-pixel
fingerprint of each image), not by index, so a duplicate of a true image elsewhere in the data set is left
out too (it would make the truth unidentifiable by construction).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch

from fl_privacy.data.images import DataSplits, ImageDataset

POOL_RULE = ("every image of the data set (train and test splits) not in the batch, the batch's own "
             "images left out by exact-pixel fingerprint")


def fingerprints(images: torch.Tensor) -> list[bytes]:
    """One digest per image of its exact float32 pixels (N x ... -> N digests)."""
    flat = images.detach().to(torch.float32).cpu().contiguous().flatten(1).numpy()
    return [hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in flat]


def whole_data_set(splits: DataSplits) -> ImageDataset:
    """Every image of the data set: the train split, then the test split."""
    return ImageDataset(torch.cat([splits.train.images, splits.test.images]),
                        torch.cat([splits.train.labels, splits.test.labels]))


def pool_mask(data_digests: Sequence[bytes], truth: ImageDataset) -> torch.Tensor:
    """Which images of the data (given by their `fingerprints`) equal none of `truth`'s images."""
    own = set(fingerprints(truth.images))
    return torch.tensor([digest not in own for digest in data_digests], dtype=torch.bool)


def comparison_pool(data: ImageDataset, truth: ImageDataset,
                    data_digests: Sequence[bytes] | None = None) -> ImageDataset:
    """The images of `data` whose pixels equal none of `truth`'s images (the batch's comparison pool);
    `data_digests`: `fingerprints(data.images)`, when already computed."""
    keep = pool_mask(fingerprints(data.images) if data_digests is None else data_digests, truth)
    return ImageDataset(data.images[keep], data.labels[keep])


def pool_sizes(pool_labels: torch.Tensor, labels: torch.Tensor) -> dict[int, int]:
    """Pool images per class (from the pool's labels), for the classes in `labels`."""
    return {int(c): int((pool_labels == c).sum()) for c in labels.unique().tolist()}
