"""Client role `gan_adversary`: the insider of Hitaj et al. (2017) running the GAN attack.

Each round the role hands the attack (`fl_privacy.attacks.gan.attack_round`) an `InsiderView`: its own
partition, the received global model, the round and the announced accuracy. The reply is an ordinary-looking
local update (the same metrics as an honest client; its example count is what it trained on, its own images
plus the fakes). Generator, generator optimizer, fake pool and schedule counters persist in `context.state`.
After each attack round the generator goes to the lab's monitor through the lab's `publish` hook (the
server's strategy never sees it).
"""

from __future__ import annotations

import logging

import torch
from flwr.app import Context
from torch import nn

from fl_privacy.apps import node_state
from fl_privacy.apps.roles import ClientJob, honest, update_metrics
from fl_privacy.attacks.gan import (
    AdversaryState,
    attack_is_on,
    attack_round,
    make_generator_optimizer,
)
from fl_privacy.attacks.views import InsiderView
from fl_privacy.config.schema import GanAttackSettings
from fl_privacy.data.images import image_shape_of
from fl_privacy.models import DCGANGenerator
from fl_privacy.protocol import ANNOUNCED_ACCURACY
from fl_privacy.seeding import Stream, derive_seed
from fl_privacy.training import TrainSettings, model_device

log = logging.getLogger(__name__)

GENERATOR_KEY, OPTIMIZER_KEY, POOL_KEY, PROGRESS_KEY = (
    "gan.generator", "gan.generator_optimizer", "gan.fake_pool", "gan.progress")
# The name under which the generator is published to the lab's monitor.
GENERATOR_ARTIFACT = "gan_generator"


def load_state(context: Context, settings: GanAttackSettings, image_shape: tuple[int, int, int], seed: int,
               device: torch.device) -> AdversaryState:
    """The adversary's state from `context.state` (a fresh generator, initialised from `seed` on CPU, at
    first), on `device`."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        generator = DCGANGenerator(settings.latent_dim, image_shape).to(device)
    optimizer = make_generator_optimizer(generator, settings.generator_lr)
    node_state.load_module(context, GENERATOR_KEY, generator)
    node_state.load_optimizer(context, OPTIMIZER_KEY, optimizer)
    return AdversaryState(generator, optimizer, node_state.load_tensor(context, POOL_KEY))


def save_state(context: Context, state: AdversaryState) -> None:
    node_state.save_module(context, GENERATOR_KEY, state.generator)
    node_state.save_optimizer(context, OPTIMIZER_KEY, state.optimizer)
    if state.pool is not None:
        node_state.save_tensor(context, POOL_KEY, state.pool)


def gan_adversary(job: ClientJob, model: nn.Module) -> dict[str, float]:
    """One round of the GAN attack (or honest training before the attack starts)."""
    settings, gan, context = job.settings, job.settings.attack.gan, job.context
    progress = node_state.load_counters(context, PROGRESS_KEY)
    announced = job.round_config.get(ANNOUNCED_ACCURACY)
    if not attack_is_on(gan, job.server_round, announced, bool(progress)):
        return honest(job, model)
    view = InsiderView(own_data=job.data.dataset, model=model, server_round=job.server_round,
                       announced_accuracy=announced, fake_class=job.data.num_classes)
    state = load_state(context, gan, image_shape_of(view.own_data.images),
                       derive_seed(settings.seed, Stream.GAN_ATTACK), model_device(model))
    seeds = [derive_seed(settings.seed, Stream.GAN_ATTACK, job.server_round, step)
             for step in range(gan.alternations)]
    stats, generator_loss = attack_round(view, state, gan, TrainSettings.of(settings.client), seeds)
    progress = {"started_round": progress.get("started_round", job.server_round),
                "attack_rounds": progress.get("attack_rounds", 0) + 1,
                "generator_steps": (progress.get("generator_steps", 0)
                                    + gan.alternations * gan.generator_steps)}
    save_state(context, state)
    node_state.save_counters(context, PROGRESS_KEY, progress)
    job.hooks.publish(GENERATOR_ARTIFACT, job.server_round,
                      {"progress": progress, "latent_dim": gan.latent_dim,
                       "generator": {k: v.cpu() for k, v in state.generator.state_dict().items()}})
    log.info("round %d: GAN attack round %d, generator loss %.3f, %d fakes", job.server_round,
             int(progress["attack_rounds"]), generator_loss, len(state.pool) if state.pool is not None else 0)
    return update_metrics(stats)
