"""Labelled image tensors: the one record type shared by data, training, attacks and evaluation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
import torch


def image_shape_of(images: torch.Tensor) -> tuple[int, int, int]:
    """(C, H, W) of a batch of images shaped N x C x H x W."""
    return cast(tuple[int, int, int], tuple(images.shape[1:]))


@dataclass(frozen=True)
class ImageDataset:
    """Images (N x C x H x W, float32 in [0, 1]) with integer labels (N,)."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: np.ndarray | torch.Tensor | Sequence[int]) -> ImageDataset:
        """The examples at `indices`, in that order."""
        index = torch.as_tensor(np.asarray(indices), dtype=torch.long)
        return ImageDataset(self.images[index], self.labels[index])

    @classmethod
    def join(cls, parts: Sequence[ImageDataset], masks: Sequence[torch.Tensor]) -> ImageDataset:
        """The records of each part selected by its boolean mask, concatenated."""
        return cls(torch.cat([p.images[m] for p, m in zip(parts, masks, strict=True)]),
                   torch.cat([p.labels[m] for p, m in zip(parts, masks, strict=True)]))


@dataclass(frozen=True)
class DataSplits:
    """A data set's train and test splits and what a model needs to know about it."""

    name: str
    train: ImageDataset
    test: ImageDataset
    num_classes: int

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return image_shape_of(self.train.images)
