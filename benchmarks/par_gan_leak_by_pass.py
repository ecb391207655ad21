"""Benchmark: when does a PAR-GAN's white-box leak appear? The LOGAN white-box AUC (max and mean over
the discriminators) every `--every` generator steps of one training run, with the members, non-members,
seeds and settings of `+experiment=PRESET` (so the trajectory is the preset's run for that k and seed).
Usage (one line per checkpoint, JSON):

    python benchmarks/par_gan_leak_by_pass.py [--preset par_gan_regime] [--k 1] [--steps 500] [--every 25]
        [OVERRIDE ...]        e.g. defense.par_gan.members=500 seed=1
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from torch import nn

from fl_privacy.attacks.logan import white_box_scores
from fl_privacy.config import compose_settings
from fl_privacy.data.membership_split import random_split
from fl_privacy.defenses.par_gan import train_par_gan
from fl_privacy.evaluation.membership_metrics import logan_metrics
from fl_privacy.lab.pipelines.par_gan_experiment import par_gan_data, settings_for
from fl_privacy.seeding import Stream, derive_seed, stream_rng


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="par_gan_regime")
    parser.add_argument("--k", type=int, default=1, help="discriminators")
    parser.add_argument("--steps", type=int, default=500, help="generator steps")
    parser.add_argument("--every", type=int, default=25)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    settings = compose_settings([f"+experiment={args.preset}", f"defense.par_gan.discriminators=[{args.k}]",
                                 f"defense.par_gan.steps={args.steps}", "defense.par_gan.passes=null",
                                 *args.overrides])
    par_gan, seed = settings.defense.par_gan, settings.seed
    torch.set_num_threads(par_gan.torch_threads)
    # the experiment's draw and seeds (fl_privacy/lab/pipelines/par_gan_experiment.py)
    split = random_split(par_gan_data(settings).train, par_gan.members, stream_rng(seed, Stream.PAR_GAN, 0))
    gan_settings = settings_for(par_gan, args.k)
    views = par_gan.discriminator_steps * gan_settings.partition_batch * args.k / par_gan.members
    started = time.monotonic()

    def probe(step: int, generator_loss: float, discriminator_losses: list[float], _generator: nn.Module,
              discriminators: list[nn.Module]) -> None:
        if step % args.every:
            return
        scores = white_box_scores(discriminators, split.candidates.images)  # eval mode, no gradient
        for discriminator in discriminators:
            discriminator.train()
        aucs = {name: round(logan_metrics(values, split.is_member)["auc"], 4)
                for name, values in scores.items()}
        print(json.dumps({"step": step, "passes": round(step * views, 1), "white_box_auc": aucs,
                          "generator_loss": round(generator_loss, 3),
                          "discriminator_loss": round(max(discriminator_losses), 3),
                          "seconds": round(time.monotonic() - started)}), flush=True)

    train_par_gan(split.members.images, gan_settings, derive_seed(seed, Stream.PAR_GAN, 1), on_step=probe)


if __name__ == "__main__":
    main()
