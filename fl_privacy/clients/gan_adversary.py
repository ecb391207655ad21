"""Client role `gan_adversary`: the insider of Hitaj et al. (2017) running the GAN attack.

Each attack round the adversary trains its generator against the global model it just received,
adds a batch of generated images labelled with the extra "fake" class to its own data, and sends
back an ordinary-looking local update (the same metrics as an honest client; its example count is
what it trained on, its own images plus the fakes).
Generator, generator optimizer, fake pool and schedule counters persist in `context.state`.

For evaluation only, the experiment harness saves the generator after each attack round as
`<run_dir>/gan/generator.pt` (the adversary's own artifact; the server's strategy never reads it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import torch
from torch import nn

from fl_privacy.attacks.gan import (
    DCGANGenerator,
    FakePool,
    GeneratorTraining,
    make_generator_optimizer,
    train_generator,
    update_fake_pool,
)
from fl_privacy.clients import node_state
from fl_privacy.clients.roles import ClientJob, honest, update_metrics
from fl_privacy.data.datasets import ImageDataset
from fl_privacy.results import GAN_GENERATOR_FILE, save_torch
from fl_privacy.seeding import GAN_ATTACK, derive_seed
from fl_privacy.training import TrainSettings, train
from strategies.fedavg_warmup import ANNOUNCED_ACCURACY

log = logging.getLogger(__name__)

GENERATOR_KEY, OPTIMIZER_KEY, POOL_KEY, PROGRESS_KEY = (
    "gan.generator", "gan.generator_optimizer", "gan.fake_pool", "gan.progress")


@dataclass(frozen=True)
class GanAttackSettings:
    """The adversary's schedule and knobs (`client.gan` in the config)."""

    victim_class: int
    latent_dim: int
    start_round: int
    start_accuracy: float | None
    generator: GeneratorTraining
    num_fakes: int
    fake_pool: FakePool
    max_fakes: int
    alternations: int
    max_grad_norm: float | None

    @classmethod
    def from_cfg(cls, gan_cfg) -> GanAttackSettings:
        return cls(
            victim_class=int(gan_cfg.victim_class), latent_dim=int(gan_cfg.latent_dim),
            start_round=int(gan_cfg.start_round),
            start_accuracy=None if gan_cfg.start_accuracy is None else float(gan_cfg.start_accuracy),
            generator=GeneratorTraining(steps=int(gan_cfg.generator_steps),
                                        batch_size=int(gan_cfg.generator_batch_size),
                                        lr=float(gan_cfg.generator_lr),
                                        tv_weight=float(gan_cfg.tv_weight),
                                        diversity_weight=float(gan_cfg.diversity_weight)),
            num_fakes=int(gan_cfg.num_fakes), fake_pool=str(gan_cfg.fake_pool),  # type: ignore[arg-type]
            max_fakes=int(gan_cfg.max_fakes), alternations=int(gan_cfg.alternations),
            max_grad_norm=None if gan_cfg.max_grad_norm is None else float(gan_cfg.max_grad_norm),
        )


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


def _with_fakes(own: ImageDataset, fakes: torch.Tensor, fake_class: int) -> ImageDataset:
    labels = torch.full((len(fakes),), fake_class, dtype=own.labels.dtype)
    return ImageDataset(torch.cat([own.images, fakes]), torch.cat([own.labels, labels]))


def gan_adversary(job: ClientJob, model: nn.Module) -> dict[str, float]:
    """One round of the GAN attack (or honest training before the attack starts)."""
    settings = GanAttackSettings.from_cfg(job.cfg.client.gan)
    context = job.context
    progress = node_state.load_counters(context, PROGRESS_KEY)
    if not attack_is_on(settings, job.server_round, job.round_config.get(ANNOUNCED_ACCURACY),
                        bool(progress)):
        return honest(job, model)

    own = job.federation.client_data(job.partition_id)
    with torch.random.fork_rng():
        torch.manual_seed(derive_seed(job.cfg.seed, GAN_ATTACK))
        generator = DCGANGenerator(settings.latent_dim, own.images.shape[1:])
    optimizer = make_generator_optimizer(generator, settings.generator.lr)
    node_state.load_module(context, GENERATOR_KEY, generator)
    node_state.load_optimizer(context, OPTIMIZER_KEY, optimizer)
    pool = node_state.load_tensor(context, POOL_KEY)
    fake_class = job.federation.splits.num_classes
    local = replace(TrainSettings.from_cfg(job.cfg.client), max_grad_norm=settings.max_grad_norm)

    local_steps, examples = 0, 0
    for step in range(settings.alternations):
        seed = derive_seed(job.cfg.seed, GAN_ATTACK, job.server_round, step)
        generator_loss = train_generator(generator, optimizer, model, settings.victim_class,
                                         settings.generator, seed)
        pool = update_fake_pool(pool, generator.sample(settings.num_fakes, seed),
                                settings.fake_pool, settings.max_fakes)
        stats = train(model, _with_fakes(own, pool, fake_class), local, seed=seed)
        local_steps += stats.steps
        examples = max(examples, stats.num_examples)

    progress = {"started_round": progress.get("started_round", job.server_round),
                "attack_rounds": progress.get("attack_rounds", 0) + 1,
                "generator_steps": progress.get("generator_steps", 0)
                + settings.alternations * settings.generator.steps}
    node_state.save_module(context, GENERATOR_KEY, generator)
    node_state.save_optimizer(context, OPTIMIZER_KEY, optimizer)
    node_state.save_tensor(context, POOL_KEY, pool)
    node_state.save_counters(context, PROGRESS_KEY, progress)
    save_torch(job.run_dir / GAN_GENERATOR_FILE,
                    {"round": job.server_round, "progress": progress,
                     "latent_dim": settings.latent_dim, "generator": generator.state_dict()})
    log.info("round %d: GAN attack round %d, generator loss %.3f, %d fakes", job.server_round,
             int(progress["attack_rounds"]), generator_loss, len(pool))
    return update_metrics(replace(stats, num_examples=examples, steps=local_steps))
