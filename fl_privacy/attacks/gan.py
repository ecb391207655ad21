"""The GAN attack of Hitaj et al. (2017): an insider trains a generator against the shared model.

The adversary treats the global model it receives as the discriminator: it trains a generator
so that the model classifies generated images as the victim class, then labels a batch of them
with the artificial "fake" class and trains its honest-looking local update on its own data plus
these fakes. Later rounds force the model to tell the victim's real images from the fakes, which
in turn pushes the generator toward realistic victim-class images.

Everything here uses only what the adversary has: the received model, its own generator and
its own data. It never sees the victim's data (the threat model in docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
from torch import nn
from torch.nn import functional as F

from fl_privacy.attacks.priors import total_variation
from fl_privacy.attacks.views import InsiderView
from fl_privacy.config.schema import GanAttackSettings
from fl_privacy.data.images import ImageDataset
from fl_privacy.models import DCGANGenerator
from fl_privacy.training import TrainSettings, TrainStats, model_device, train


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

    @classmethod
    def of(cls, gan: GanAttackSettings) -> GeneratorTraining:
        return cls(gan.generator_steps, gan.generator_batch_size, gan.generator_lr, gan.tv_weight,
                   gan.diversity_weight)


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

    The discriminator is used in eval mode and left unchanged; the latent vectors are drawn on CPU (the same
    ones on every device) and moved to the generator's device. Returns the last step's loss.
    """
    noise, device = torch.Generator().manual_seed(seed), model_device(generator)
    was_training = discriminator.training
    discriminator.eval()
    frozen = [p for p in discriminator.parameters() if p.requires_grad]
    for parameter in frozen:
        parameter.requires_grad_(False)
    generator.train()
    targets = torch.full((settings.batch_size,), target_class, dtype=torch.long, device=device)
    loss = torch.zeros(())
    try:
        for _ in range(settings.steps):
            latents = torch.randn(settings.batch_size, generator.latent_dim, generator=noise).to(device)
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


def update_fake_pool(pool: torch.Tensor | None, new: torch.Tensor, mode: str, max_size: int) -> torch.Tensor:
    """The images labelled fake this round: the new batch (`replace`) or all batches so far,
    keeping the newest `max_size` (`accumulate`)."""
    if mode == "replace" or pool is None:
        return new
    return torch.cat([pool, new])[-max_size:]


def attack_is_on(settings: GanAttackSettings, server_round: int, announced_accuracy: float | None,
                 already_started: bool) -> bool:
    """Once started the attack continues; it starts at the first round >= `start_round` where the
    accuracy the server announced reaches `start_accuracy` (when one is set)."""
    if already_started:
        return True
    if server_round < settings.start_round:
        return False
    if settings.start_accuracy is None:
        return True
    return announced_accuracy is not None and announced_accuracy >= settings.start_accuracy


@dataclass
class AdversaryState:
    """What the adversary keeps between rounds: its generator, the generator's optimizer and the fakes."""

    generator: DCGANGenerator
    optimizer: torch.optim.Optimizer
    pool: torch.Tensor | None = None


def _with_fakes(own: ImageDataset, fakes: torch.Tensor | None, fake_class: int) -> ImageDataset:
    if fakes is None:  # a passive adversary
        return own
    labels = torch.full((len(fakes),), fake_class, dtype=own.labels.dtype)
    return ImageDataset(torch.cat([own.images, fakes]), torch.cat([own.labels, labels]))


def attack_round(view: InsiderView, state: AdversaryState, settings: GanAttackSettings, local: TrainSettings,
                 seeds: Sequence[int]) -> tuple[TrainStats, float]:
    """One round of the GAN attack, one alternation per seed: train the generator against the received
    model, label a batch of its images "fake", train the model (the local update) on own data + fakes
    (passive, `inject_fakes=false`: on own data only; the generator still trains).
    Returns the local training's stats over all alternations and the generator's last loss."""
    generator_training = GeneratorTraining.of(settings)
    local = replace(local, max_grad_norm=settings.max_grad_norm)
    steps, examples, generator_loss = 0, 0, 0.0
    stats = TrainStats(0.0, 0.0, 0, 0)
    for seed in seeds:
        generator_loss = train_generator(state.generator, state.optimizer, view.model, settings.victim_class,
                                         generator_training, seed)
        if settings.inject_fakes:
            state.pool = update_fake_pool(state.pool, state.generator.sample(settings.num_fakes, seed),
                                          settings.fake_pool, settings.max_fakes)
        stats = train(view.model, _with_fakes(view.own_data, state.pool, view.fake_class), local, seed=seed)
        steps += stats.steps
        examples = max(examples, stats.num_examples)
    return replace(stats, num_examples=examples, steps=steps), generator_loss
