"""PAR-GAN (Chen, Wang, Gao & Shi, KDD 2021): one generator, k discriminators on disjoint data partitions.

Each discriminator only ever sees the real records of its own partition (and generated images);
the generator is trained against all of them at once: its loss is the mean of the k discriminators'
non-saturating GAN losses. With k = 1 this is the plain (DCGAN) GAN.

How this maps onto federated learning: each partition is a client that owns its discriminator (its
persistent state, `context.state` in Flower) and never shares it; the generator is the shared model.
In every step each client takes one discriminator step on its own data and its share of generated
images, and returns the gradient of its generator loss on that share; the server averages these
gradients (FedSGD) and steps the generator. The mean over clients of each client's gradient is the
gradient of the mean loss, so the in-process loop below computes exactly that update.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from fl_privacy.data.images import image_shape_of
from fl_privacy.models import DCGANGenerator, SeedCNN
from fl_privacy.seeding import Stream, derive_seed

log = logging.getLogger(__name__)

# sub-streams of Stream.PAR_GAN inside one training run
PARTITION_BATCHES, LATENT_NOISE = 101, 102


@dataclass(frozen=True)
class ParGanSettings:
    """`batch_size` real records per step in total, split evenly over the k discriminators (so every
    record is seen equally often whatever k is); as many generated images are split the same way.
    With `batch_per_discriminator` every discriminator takes `batch_size` records of its own (the PAR-GAN
    authors' code: 64 each). `discriminator_steps` discriminator steps precede each generator step."""

    num_discriminators: int
    steps: int
    batch_size: int = 60
    latent_dim: int = 100
    generator_lr: float = 2e-4
    discriminator_lr: float = 2e-4
    discriminator_dropout: float = 0.0
    log_every: int = 500
    batch_per_discriminator: bool = False
    discriminator_steps: int = 1

    @property
    def partition_batch(self) -> int:
        return self.batch_size if self.batch_per_discriminator else self.batch_size // self.num_discriminators


@dataclass
class ParGan:
    """A trained PAR-GAN: the shared generator, the k discriminators and their partitions
    (indices into the training records)."""

    generator: DCGANGenerator
    discriminators: list[nn.Module]
    partitions: list[np.ndarray]
    seconds: float


def split_partitions(num_records: int, k: int, seed: int) -> list[np.ndarray]:
    """k disjoint partitions of `range(num_records)` of (almost) equal size, drawn with `seed`."""
    order = np.random.default_rng(seed).permutation(num_records)
    return [np.sort(part) for part in np.array_split(order, k)]


def build_discriminator(image_shape: tuple[int, int, int], dropout: float) -> nn.Module:
    """The DCGAN-style discriminator: the project's SeedCNN (two stride-2 convs) with one logit."""
    return SeedCNN(image_shape, 1, dropout=dropout)


def _batches(size: int, batch: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Endless batches of positions 0..size-1, reshuffled every epoch."""
    while True:
        order = torch.randperm(size, generator=generator)
        for start in range(0, size - batch + 1, batch):
            yield order[start:start + batch]


def generator_loss(discriminators: list[nn.Module], fakes: list[torch.Tensor]) -> torch.Tensor:
    """PAR-GAN's generator loss: the mean over discriminators i of the non-saturating loss
    -log D_i(G(z)) on the i-th share of the generated batch (for k = 1 the plain GAN's loss).

    Each discriminator judges its own share of fakes, as a client would with latents it draws itself;
    in expectation over z this is the loss of every discriminator on every fake, at 1/k of the cost."""
    return torch.stack([F.binary_cross_entropy_with_logits(d(own), torch.ones(len(own), 1, device=own.device))
                        for d, own in zip(discriminators, fakes, strict=True)]).mean()


def discriminator_step(discriminator: nn.Module, optimizer: torch.optim.Optimizer,
                       real: torch.Tensor, fakes: torch.Tensor) -> float:
    """One step of -log D(real) - log(1 - D(fake)) on this discriminator's own real batch."""
    logits = discriminator(torch.cat([real, fakes.detach()]))
    targets = torch.cat([torch.ones(len(real), 1), torch.zeros(len(fakes), 1)]).to(real.device)
    loss = F.binary_cross_entropy_with_logits(logits, targets)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return float(loss.item())


def _adam(module: nn.Module, lr: float) -> torch.optim.Adam:
    """DCGAN's Adam(betas=(0.5, 0.999)), for both players."""
    return torch.optim.Adam(module.parameters(), lr=lr, betas=(0.5, 0.999))


StepProbe = Callable[[int, float, list[float], DCGANGenerator, list[nn.Module]], None]


def train_par_gan(records: torch.Tensor, settings: ParGanSettings, seed: int,
                  on_step: StepProbe | None = None) -> ParGan:
    """Train a PAR-GAN on `records` (N x C x H x W in [0, 1]); `seed` drives partitions, init and
    batches; the models live on the records' device. `on_step(step, generator_loss,
    discriminator_losses, generator, discriminators)` is called after every step (a probe that evaluates
    a model must copy it, or hand it back in train mode)."""
    k = settings.num_discriminators
    if not 1 <= k <= settings.batch_size and not settings.batch_per_discriminator:
        raise ValueError(f"need 1 <= num_discriminators ({k}) <= batch_size ({settings.batch_size})")
    partitions = split_partitions(len(records), k, seed)
    shape = image_shape_of(records)
    torch.manual_seed(seed)
    device = records.device
    generator = DCGANGenerator(settings.latent_dim, shape).to(device)
    discriminators = [build_discriminator(shape, settings.discriminator_dropout).to(device)
                      for _ in range(k)]
    generator_optimizer = _adam(generator, settings.generator_lr)
    optimizers = [_adam(d, settings.discriminator_lr) for d in discriminators]
    # a discriminator's real data: its own partition, nothing else
    own_data = [records[torch.as_tensor(part, device=device)] for part in partitions]
    streams = [_batches(len(part), settings.partition_batch,
                        torch.Generator().manual_seed(
                            derive_seed(seed, Stream.PAR_GAN, PARTITION_BATCHES, i)))
               for i, part in enumerate(partitions, start=1)]
    noise = torch.Generator().manual_seed(derive_seed(seed, Stream.PAR_GAN, LATENT_NOISE))
    share = settings.partition_batch
    generator.train()
    for discriminator in discriminators:
        discriminator.train()
    started = time.monotonic()
    for step in range(1, settings.steps + 1):
        for _ in range(settings.discriminator_steps):  # fresh real batches and fakes each time
            latents = torch.randn(share * k, settings.latent_dim, generator=noise).to(device)
            fakes = generator(latents).split(share)
            real = [data[next(stream).to(device)] for data, stream in zip(own_data, streams, strict=True)]
            d_losses = [discriminator_step(d, opt, own_real, own_fakes) for d, opt, own_real, own_fakes
                        in zip(discriminators, optimizers, real, fakes, strict=True)]
        for discriminator in discriminators:
            discriminator.requires_grad_(False)
        g_loss = generator_loss(discriminators, fakes)
        generator_optimizer.zero_grad(set_to_none=True)
        g_loss.backward()
        generator_optimizer.step()
        for discriminator in discriminators:
            discriminator.requires_grad_(True)
        if on_step is not None:
            on_step(step, float(g_loss.item()), d_losses, generator, discriminators)
        if settings.log_every and step % settings.log_every == 0:
            log.info("PAR-GAN k=%d: step %d/%d, generator loss %.3f, discriminator loss %.3f, %.0f s", k,
                     step, settings.steps, g_loss.item(), np.mean(d_losses), time.monotonic() - started)
    generator.eval()
    for discriminator in discriminators:
        discriminator.eval()
    return ParGan(generator, discriminators, partitions, time.monotonic() - started)
