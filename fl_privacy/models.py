"""Models shared by clients, server and attacks: the seed's CNN and DLG's sigmoid LeNet."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

NORMS = ("none", "group")


def _norm(kind: str, channels: int) -> nn.Module:
    """GroupNorm keeps a model Opacus-compatible (no BatchNorm); 'none' adds nothing."""
    return nn.GroupNorm(min(32, channels // 4) or 1, channels) if kind == "group" else nn.Identity()


class SeedCNN(nn.Module):
    """Two 5x5 stride-2 convs (64, 128) with LeakyReLU and dropout, then a dense head.

    Takes images in [0, 1] and centres them to [-1, 1] itself (the range a tanh generator uses).

    `features(x)` is the flattened penultimate representation (used for feature-space metrics).
    """

    def __init__(self, image_shape: tuple[int, int, int], num_outputs: int,
                 norm: str = "none", dropout: float = 0.3) -> None:
        super().__init__()
        channels, height, width = image_shape
        self.body = nn.Sequential(
            nn.Conv2d(channels, 64, 5, stride=2, padding=2), _norm(norm, 64),
            nn.LeakyReLU(0.2), nn.Dropout(dropout),
            nn.Conv2d(64, 128, 5, stride=2, padding=2), _norm(norm, 128),
            nn.LeakyReLU(0.2), nn.Dropout(dropout),
            nn.Flatten(),
        )
        self.head = nn.Linear(128 * _shrink(height, 2) * _shrink(width, 2), num_outputs)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x * 2.0 - 1.0)  # images in [0, 1] are centred to [-1, 1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class SigmoidLeNet(nn.Module):
    """The LeNet variant of Deep Leakage from Gradients: 3 convs (12 ch) with sigmoid, one dense layer."""

    def __init__(self, image_shape: tuple[int, int, int], num_outputs: int,
                 norm: str = "none", dropout: float = 0.0) -> None:
        super().__init__()
        channels, height, width = image_shape
        self.body = nn.Sequential(
            nn.Conv2d(channels, 12, 5, padding=2, stride=2), _norm(norm, 12), nn.Sigmoid(),
            nn.Conv2d(12, 12, 5, padding=2, stride=2), _norm(norm, 12), nn.Sigmoid(),
            nn.Conv2d(12, 12, 5, padding=2, stride=1), _norm(norm, 12), nn.Sigmoid(),
            nn.Flatten(), nn.Dropout(dropout),
        )
        self.head = nn.Linear(12 * _shrink(height, 2) * _shrink(width, 2), num_outputs)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def _shrink(size: int, times: int) -> int:
    """Spatial size after `times` 5x5 stride-2 convolutions with padding 2."""
    for _ in range(times):
        size = (size + 1) // 2
    return size


MODELS: dict[str, type[nn.Module]] = {"cnn": SeedCNN, "lenet": SigmoidLeNet}
# `default`: PyTorch's init; `dlg`: every parameter uniform in [-0.5, 0.5] (Zhu et al. 2019's code)
INITS = ("default", "dlg")


def build_model(model_cfg, image_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """Instantiate `model_cfg.name`; `num_outputs` defaults to the data set's class count."""
    num_outputs = model_cfg.num_outputs or num_classes
    model = MODELS[model_cfg.name](tuple(image_shape), int(num_outputs),
                                   norm=model_cfg.norm, dropout=float(model_cfg.dropout))
    if model_cfg.get("init", "default") == "dlg":
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.uniform_(-0.5, 0.5)
    return model


def model_factory(model_cfg, image_shape, num_classes: int, seed: int) -> Callable[[], nn.Module]:
    """A function that builds the same freshly initialised model every call (init drawn from `seed`)."""

    def make() -> nn.Module:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            return build_model(model_cfg, image_shape, num_classes)

    return make
