"""Models shared by clients, server, attacks and defenses: the seed's CNN, DLG's sigmoid LeNet and the
DCGAN generator of the GAN attack and PAR-GAN."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from fl_privacy.config.schema import ClientSettings, ModelSettings
from fl_privacy.user_model import build_user_model


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


class DCGANGenerator(nn.Module):
    """DCGAN-style generator: a dense layer to (128, h/4, w/4), two transposed convs, tanh.

    Outputs images in [0, 1] shaped `image_shape`; sizes that are not a multiple of 4 are
    resized bilinearly from the next multiple of 4 (e.g. 25x25 faces from 28x28).
    """

    def __init__(self, latent_dim: int, image_shape: tuple[int, int, int]) -> None:
        super().__init__()
        channels, height, width = image_shape
        self.latent_dim = latent_dim
        self.image_shape = tuple(image_shape)
        self.start = (math.ceil(height / 4), math.ceil(width / 4))
        self.project = nn.Sequential(
            nn.Linear(latent_dim, 128 * self.start[0] * self.start[1]),
            nn.BatchNorm1d(128 * self.start[0] * self.start[1]), nn.ReLU())
        self.upsample = nn.Sequential(
            nn.ConvTranspose2d(128, 64, 4, stride=2, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
            nn.ConvTranspose2d(64, channels, 4, stride=2, padding=1), nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        images = self.upsample(self.project(z).view(-1, 128, *self.start))
        if images.shape[-2:] != self.image_shape[1:]:
            images = F.interpolate(images, size=self.image_shape[1:], mode="bilinear",
                                   align_corners=False)
        return (images + 1) / 2

    def sample(self, count: int, seed: int) -> torch.Tensor:
        """`count` images (on CPU) from latent vectors drawn with `seed` on CPU (eval mode, no gradient)."""
        was_training = self.training
        self.eval()
        with torch.no_grad():
            z = torch.randn(count, self.latent_dim, generator=torch.Generator().manual_seed(seed))
            images = self(z.to(next(self.parameters()).device))
        self.train(was_training)
        return images.cpu()


# The imprint block's parameters in an `Imprinted` model's state (the malicious server crafts them; the
# imprint attack reads their gradients).
IMPRINT_WEIGHT, IMPRINT_BIAS = "imprint.linear0.weight", "imprint.linear0.bias"
FEEDBACK_WEIGHT, FEEDBACK_BIAS = "imprint.linear1.weight", "imprint.linear1.bias"


class ImprintBlock(nn.Module):
    """The imprint block of Robbing the Fed (Fowl et al. 2022) in front of a model: `bins` ReLU units on the
    flattened image (`linear0`) fed back into the image through `linear1`, `x + linear1(relu(linear0(x)))`.

    It is part of the architecture a malicious server imposes; the server crafts its weights
    (`strategies.malicious_imprint`) so that each unit measures a brightness threshold and each image's
    gradient lands in one bin. Hand-written: `breaching` (which has one) is not a dependency of the lab.
    """

    def __init__(self, image_shape: tuple[int, int, int], bins: int) -> None:
        super().__init__()
        size = math.prod(image_shape)
        self.linear0 = nn.Linear(size, bins)
        self.linear1 = nn.Linear(bins, size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.linear1(F.relu(self.linear0(x.flatten(1)))).view_as(x)


class Imprinted(nn.Module):
    """A model behind an `ImprintBlock` (`imprint.*` parameters, then the model's as `inner.*`)."""

    def __init__(self, inner: nn.Module, image_shape: tuple[int, int, int], bins: int) -> None:
        super().__init__()
        self.imprint = ImprintBlock(image_shape, bins)
        self.inner = inner

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner.features(self.imprint(x))  # type: ignore[operator]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(self.imprint(x))


MODELS: dict[str, type[nn.Module]] = {"cnn": SeedCNN, "lenet": SigmoidLeNet}


def build_model(settings: ModelSettings, image_shape: Sequence[int], num_classes: int) -> nn.Module:
    """Instantiate `model.name` (or your `model._target_`); `num_outputs` defaults to the data set's class
    count."""
    num_outputs = settings.num_outputs or num_classes
    if settings.target is not None:
        model = build_user_model(settings, image_shape, int(num_outputs))
    else:
        model = MODELS[settings.name](tuple(image_shape), int(num_outputs), norm=settings.norm,
                                      dropout=settings.dropout)
    if settings.init == "dlg":
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.uniform_(-0.5, 0.5)
    if settings.imprint_bins:
        channels, height, width = image_shape
        return Imprinted(model, (channels, height, width), settings.imprint_bins)
    return model


def model_factory(settings: ModelSettings, image_shape: Sequence[int], num_classes: int, seed: int,
                  device: torch.device | str = "cpu") -> Callable[[], nn.Module]:
    """A function that builds the same freshly initialised model every call (init drawn from `seed` on CPU,
    then moved to `device`)."""

    def make() -> nn.Module:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            return build_model(settings, image_shape, num_classes).to(device)

    return make


# Roles whose model has the artificial "fake" output of the GAN attack (Hitaj et al.: then every
# participant's model has it).
FAKE_CLASS_ROLES = frozenset({"gan_adversary"})


def model_outputs(client: ClientSettings, num_classes: int) -> int:
    """The data set's classes, plus the artificial "fake" class when any node runs the GAN attack."""
    roles = {client.role, *client.roles.values()}
    return num_classes + int(bool(roles & FAKE_CLASS_ROLES))
