"""The PAR-GAN membership experiment (`+experiment=par_gan`, `kind=par_gan`): train, attack, then score,
per k.

1. The lab draws members and non-members from the train split (the one membership sampler,
   `data.membership_split`) and trains one GAN per entry of `defense.par_gan.discriminators` on the members
   (fl_privacy/defenses/par_gan.py).
2. The attacker gets the shuffled candidate records plus the discriminators (white-box) or the
   generated samples (black-box) and returns scores (fl_privacy/attacks/logan.py); it never
   sees who is a member.
3. The evaluation loads the membership labels and scores the rankings (accuracy, ROC AUC), and the
   oracle judges the samples. Writes `par_gan_table.{json,csv}`, `samples_k{K}.png`, `summary.json`.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch

from fl_privacy.attacks.logan import monte_carlo_scores, nearest_sample_scores, white_box_scores
from fl_privacy.config.schema import ParGanExperimentSettings, Settings
from fl_privacy.data.datasets import load_splits
from fl_privacy.data.images import DataSplits
from fl_privacy.data.membership_split import random_split
from fl_privacy.defenses.par_gan import ParGanSettings, train_par_gan
from fl_privacy.errors import ConfigError
from fl_privacy.evaluation.membership_metrics import logan_metrics
from fl_privacy.evaluation.oracle import FeatureSpace, frechet_distance, load_or_train_oracle
from fl_privacy.evaluation.sample_quality import sample_quality
from fl_privacy.lab.runtime.torch_threads import restores_torch_threads
from fl_privacy.lab.summary import SummaryFile
from fl_privacy.results import save_image_grid, write_csv, write_json
from fl_privacy.run_layout import PAR_GAN_TABLE, PAR_GAN_TABLE_CSV, par_gan_samples_file
from fl_privacy.seeding import Stream, derive_seed, stream_rng

log = logging.getLogger(__name__)


def steps_for(par_gan: ParGanExperimentSettings, k: int) -> int:
    """Generator steps of the GAN with k discriminators: `steps`, or with `passes` set, as many as give
    each of a discriminator's records `passes` views (a step: discriminator_steps batches of its own)."""
    if par_gan.passes is None:
        return par_gan.steps
    batch = par_gan.batch_size if par_gan.batch_per_discriminator else par_gan.batch_size // k
    return max(1, round(par_gan.passes * (par_gan.members // k) / (par_gan.discriminator_steps * batch)))


def settings_for(par_gan: ParGanExperimentSettings, k: int) -> ParGanSettings:
    return ParGanSettings(num_discriminators=k, steps=steps_for(par_gan, k), batch_size=par_gan.batch_size,
                          latent_dim=par_gan.latent_dim, generator_lr=par_gan.generator_lr,
                          discriminator_lr=par_gan.discriminator_lr,
                          discriminator_dropout=par_gan.discriminator_dropout, log_every=par_gan.log_every,
                          batch_per_discriminator=par_gan.batch_per_discriminator,
                          discriminator_steps=par_gan.discriminator_steps)


def par_gan_data(settings: Settings) -> DataSplits:
    """The data of the PAR-GAN experiment, checked to hold its members and as many non-members."""
    splits = load_splits(settings.data, settings.seed)
    members = settings.defense.par_gan.members
    if 2 * members > len(splits.train):
        size = len(splits.train)
        raise ConfigError("defense.par_gan.members", members, "members and as many non-members must fit "
                          f"in the train split ({size} records): at most {size // 2}")
    return splits


@restores_torch_threads
def run_par_gan(settings: Settings, splits: DataSplits, run_dir: Path, summary: SummaryFile) -> None:
    """Run the experiment of `defense.par_gan` on `splits` and write its table and sample grids into
    `run_dir`, its results into `summary`."""
    started = time.monotonic()
    par_gan, seed = settings.defense.par_gan, settings.seed
    torch.set_num_threads(par_gan.torch_threads)
    split = random_split(splits.train, par_gan.members, stream_rng(seed, Stream.PAR_GAN, 0))
    candidates, is_member = split.candidates.images, split.is_member  # the attacker gets the images only
    members, non_members = split.members.images, split.non_members.images  # the lab's side
    oracle = load_or_train_oracle(splits, settings.evaluation.oracle, seed)
    space = FeatureSpace(oracle, settings.evaluation.oracle.components)
    baseline = frechet_distance(space(members), space(non_members))
    log.info("PAR-GAN: %d members, %d non-members from the train split; oracle held-out accuracy %.3f; "
             "Fréchet distance members vs non-members %.1f", len(members), len(non_members),
             oracle.heldout_accuracy, baseline)
    rows = []
    for k in par_gan.discriminators:
        gan_settings = settings_for(par_gan, k)
        gan = train_par_gan(members, gan_settings, seed=derive_seed(seed, Stream.PAR_GAN, 1))
        samples = gan.generator.sample(par_gan.samples, seed=derive_seed(seed, Stream.PAR_GAN, 2))
        save_image_grid(par_gan_samples_file(run_dir, k), samples[:100], nrow=10)
        # the attacker's side: candidates and what each attacker sees, never `is_member`
        white = white_box_scores(gan.discriminators, candidates)
        pixel = nearest_sample_scores(candidates, samples, par_gan.neighbours)
        feature = nearest_sample_scores(candidates, samples, par_gan.neighbours, embed=space)
        attacks = [("white_box_max", white["max"]), ("white_box_mean", white["mean"]),
                   ("black_box_pixel", pixel), ("black_box_feature", feature)]
        if par_gan.monte_carlo_samples:
            many = gan.generator.sample(par_gan.monte_carlo_samples,
                                        seed=derive_seed(seed, Stream.PAR_GAN, 3))
            mc_scores = monte_carlo_scores(candidates, many, par_gan.monte_carlo_quantile)
            attacks.append(("monte_carlo", mc_scores))
        # the evaluation's side
        real_per_step = par_gan.discriminator_steps * par_gan.batch_size * (
            k if par_gan.batch_per_discriminator else 1)
        row = {"discriminators": k, "steps": gan_settings.steps,
               "epochs_per_record": gan_settings.steps * real_per_step / len(members)}
        for name, scores in attacks:
            for metric, value in logan_metrics(scores, is_member).items():
                row[f"{name}_{metric}"] = value
        row.update(sample_quality(oracle, space, samples, non_members))
        row["train_seconds"] = gan.seconds
        rows.append(row)
        log.info("PAR-GAN k=%d: %s", k, {key: round(value, 3) for key, value in row.items()})
    write_json(run_dir / PAR_GAN_TABLE, rows)
    write_csv(run_dir / PAR_GAN_TABLE_CSV, rows)
    summary.update(par_gan=rows, baseline={"frechet_members_vs_non_members": baseline,
                                           "oracle_heldout_accuracy": oracle.heldout_accuracy},
                   wall_seconds=time.monotonic() - started)
