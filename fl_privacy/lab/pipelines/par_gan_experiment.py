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
4. With `quality_checkpoints`, the generator of each checkpoint step is attacked by the generator-only
   attacks and its Fréchet distance measured too (`par_gan_quality_curves.json`): the curve on which the
   report compares k at equal sample quality, since a larger k trades quality for leak.
"""

from __future__ import annotations

import copy
import logging
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from fl_privacy.attacks.logan import monte_carlo_scores, nearest_sample_scores, white_box_scores
from fl_privacy.config.schema import ParGanExperimentSettings, Settings
from fl_privacy.data.datasets import load_splits
from fl_privacy.data.images import DataSplits
from fl_privacy.data.membership_split import MembershipSplit, random_split
from fl_privacy.defenses.par_gan import ParGanSettings, StepProbe, train_par_gan
from fl_privacy.errors import ConfigError
from fl_privacy.evaluation.membership_metrics import logan_metrics
from fl_privacy.evaluation.oracle import FeatureSpace, frechet_distance, load_or_train_oracle
from fl_privacy.evaluation.sample_quality import sample_quality
from fl_privacy.lab.runtime.torch_threads import restores_torch_threads
from fl_privacy.lab.summary import SummaryFile
from fl_privacy.models import DCGANGenerator
from fl_privacy.results import save_image_grid, write_csv, write_json
from fl_privacy.run_layout import (
    PAR_GAN_QUALITY_CURVES,
    PAR_GAN_TABLE,
    PAR_GAN_TABLE_CSV,
    par_gan_samples_file,
)
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
    par_gan = settings.defense.par_gan
    fewest = min(steps_for(par_gan, k) for k in par_gan.discriminators)
    if par_gan.quality_checkpoints and max(par_gan.quality_checkpoints) >= fewest:
        raise ConfigError("defense.par_gan.quality_checkpoints", par_gan.quality_checkpoints,
                          f"every checkpoint must come before the last generator step of every k "
                          f"(the fewest steps here: {fewest}; the last step is scored anyway)")
    return splits


def black_box_attacks(generator: DCGANGenerator, candidates: torch.Tensor, par_gan: ParGanExperimentSettings,
                      seed: int, space: FeatureSpace) -> tuple[torch.Tensor, list[tuple[str, np.ndarray]]]:
    """The attacker who holds only `generator`: its samples, and the nearest-sample (pixel, oracle
    features) and, with `monte_carlo_samples`, Monte-Carlo scores of the candidates."""
    samples = generator.sample(par_gan.samples, seed=derive_seed(seed, Stream.PAR_GAN, 2))
    attacks = [("black_box_pixel", nearest_sample_scores(candidates, samples, par_gan.neighbours)),
               ("black_box_feature", nearest_sample_scores(candidates, samples, par_gan.neighbours,
                                                           embed=space))]
    if par_gan.monte_carlo_samples:
        many = generator.sample(par_gan.monte_carlo_samples, seed=derive_seed(seed, Stream.PAR_GAN, 3))
        attacks.append(("monte_carlo", monte_carlo_scores(candidates, many, par_gan.monte_carlo_quantile)))
    return samples, attacks


def attack_aucs(attacks: list[tuple[str, np.ndarray]], is_member: np.ndarray,
                metrics: bool = False) -> dict[str, float]:
    """`NAME_auc` of every attack's scores (with `metrics`, every LOGAN metric: `NAME_METRIC`)."""
    return {f"{name}_{metric}": value for name, scores in attacks
            for metric, value in logan_metrics(scores, is_member).items() if metrics or metric == "auc"}


def quality_point(step: int, generator: DCGANGenerator, split: MembershipSplit,
                  par_gan: ParGanExperimentSettings, seed: int, space: FeatureSpace) -> dict[str, float]:
    """One point of the leak-vs-quality curve: the generator of `step` attacked as the final one is,
    and its Fréchet distance to the non-members (as `sample_quality` measures it)."""
    samples, attacks = black_box_attacks(generator, split.candidates.images, par_gan, seed, space)
    quality = frechet_distance(space(samples), space(split.non_members.images))
    return {"step": step, "frechet_distance": quality, **attack_aucs(attacks, split.is_member)}


def generator_keeper(steps: list[int], kept: dict[int, DCGANGenerator]) -> StepProbe:
    """A training probe that keeps a copy of the generator (in eval mode) at each of `steps`."""
    def keep(step: int, _loss: float, _losses: list[float], generator: DCGANGenerator,
             _discriminators: list[nn.Module]) -> None:
        if step in steps:
            kept[step] = copy.deepcopy(generator).eval()
    return keep


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
    rows, curves = [], {}
    for k in par_gan.discriminators:
        gan_settings = settings_for(par_gan, k)
        snapshots: dict[int, DCGANGenerator] = {}
        gan = train_par_gan(members, gan_settings, seed=derive_seed(seed, Stream.PAR_GAN, 1),
                            on_step=generator_keeper(par_gan.quality_checkpoints, snapshots)
                            if par_gan.quality_checkpoints else None)
        samples, generator_attacks = black_box_attacks(gan.generator, candidates, par_gan, seed, space)
        save_image_grid(par_gan_samples_file(run_dir, k), samples[:100], nrow=10)
        # the attacker's side: candidates and what each attacker sees, never `is_member`
        white = white_box_scores(gan.discriminators, candidates)
        attacks = [("white_box_max", white["max"]), ("white_box_mean", white["mean"]), *generator_attacks]
        # the evaluation's side
        real_per_step = par_gan.discriminator_steps * par_gan.batch_size * (
            k if par_gan.batch_per_discriminator else 1)
        row = {"discriminators": k, "steps": gan_settings.steps,
               "epochs_per_record": gan_settings.steps * real_per_step / len(members)}
        row |= attack_aucs(attacks, is_member, metrics=True)
        row.update(sample_quality(oracle, space, samples, non_members))
        row["train_seconds"] = gan.seconds
        rows.append(row)
        if snapshots:
            curves[str(k)] = [quality_point(step, generator, split, par_gan, seed, space)
                              for step, generator in sorted(snapshots.items())] + [
                {"step": gan_settings.steps, "frechet_distance": row["frechet_distance"],
                 **attack_aucs(generator_attacks, is_member)}]
        log.info("PAR-GAN k=%d: %s", k, {key: round(value, 3) for key, value in row.items()})
    if curves:
        write_json(run_dir / PAR_GAN_QUALITY_CURVES, curves)
    write_json(run_dir / PAR_GAN_TABLE, rows)
    write_csv(run_dir / PAR_GAN_TABLE_CSV, rows)
    summary.update(par_gan=rows, baseline={"frechet_members_vs_non_members": baseline,
                                           "oracle_heldout_accuracy": oracle.heldout_accuracy},
                   wall_seconds=time.monotonic() - started)
