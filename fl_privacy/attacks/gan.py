"""The GAN attack of Hitaj et al. (2017): an insider trains a generator against the shared model.

The adversary treats the global model it receives as the discriminator: it trains a generator
so that the model classifies generated images as the victim class, then labels a batch of them
with the artificial "fake" class and trains its honest-looking local update on its own data plus
these fakes. Later rounds force the model to tell the victim's real images from the fakes, which
in turn pushes the generator toward realistic victim-class images.

Everything here uses only what the adversary has: the received model, its own generator and
its own data. It never sees the victim's data (the threat model in DESIGN.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

from fl_privacy.attacks.priors import total_variation

FakePool = Literal["replace", "accumulate"]
FAKE_POOLS = ("replace", "accumulate")


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
        """`count` images from latent vectors drawn with `seed` (eval mode, no gradient)."""
        was_training = self.training
        self.eval()
        with torch.no_grad():
            z = torch.randn(count, self.latent_dim, generator=torch.Generator().manual_seed(seed))
            images = self(z)
        self.train(was_training)
        return images


@dataclass(frozen=True)
class GeneratorTraining:
    """How the generator is trained against the discriminator in one attack round.

    `tv_weight` adds total variation of the generated images to the loss: an image prior (natural
    images are mostly smooth) that keeps the generator from fooling the discriminator with
    high-frequency noise. `diversity_weight` adds the mode-seeking term of Mao et al. (2019):
    minus the ratio of image distance to latent distance over pairs in the batch, which keeps the
    generator from collapsing onto one image the discriminator likes.
    """

    steps: int = 100
    batch_size: int = 64
    lr: float = 2e-4
    tv_weight: float = 1.0
    diversity_weight: float = 0.0


def make_generator_optimizer(generator: nn.Module, lr: float) -> torch.optim.Adam:
    """Adam with DCGAN's betas (0.5, 0.999)."""
    return torch.optim.Adam(generator.parameters(), lr=lr, betas=(0.5, 0.999))


def mode_seeking_term(images: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
    """Mean over pairs (first half vs second half of the batch) of |x1 - x2| / |z1 - z2|."""
    half = len(images) // 2
    image_gap = (images[:half] - images[half:2 * half]).abs().flatten(1).mean(1)
    latent_gap = (latents[:half] - latents[half:2 * half]).abs().mean(1)
    return (image_gap / (latent_gap + 1e-5)).mean()


def train_generator(generator: DCGANGenerator, optimizer: torch.optim.Optimizer,
                    discriminator: nn.Module, target_class: int, settings: GeneratorTraining,
                    seed: int) -> float:
    """Train `generator` so that the frozen `discriminator` labels its images `target_class`.

    The discriminator is used in eval mode and left unchanged. Returns the last step's loss.
    """
    noise = torch.Generator().manual_seed(seed)
    was_training = discriminator.training
    discriminator.eval()
    frozen = [p for p in discriminator.parameters() if p.requires_grad]
    for parameter in frozen:
        parameter.requires_grad_(False)
    generator.train()
    targets = torch.full((settings.batch_size,), target_class, dtype=torch.long)
    loss = torch.zeros(())
    try:
        for _ in range(settings.steps):
            latents = torch.randn(settings.batch_size, generator.latent_dim, generator=noise)
            images = generator(latents)
            loss = F.cross_entropy(discriminator(images), targets)
            if settings.tv_weight:
                loss = loss + settings.tv_weight * total_variation(images)
            if settings.diversity_weight:
                loss = loss - settings.diversity_weight * mode_seeking_term(images, latents)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    finally:
        for parameter in frozen:
            parameter.requires_grad_(True)
        discriminator.train(was_training)
    return float(loss.item())


def update_fake_pool(pool: torch.Tensor | None, new: torch.Tensor, mode: FakePool,
                     max_size: int) -> torch.Tensor:
    """The images labelled fake this round: the new batch (`replace`) or all batches so far,
    keeping the newest `max_size` (`accumulate`)."""
    if mode == "replace" or pool is None:
        return new
    return torch.cat([pool, new])[-max_size:]
