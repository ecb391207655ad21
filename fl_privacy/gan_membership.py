"""The PAR-GAN membership experiment (`+experiment=par_gan`): train, attack, then score, per k.

1. The lab draws members and non-members from the train split and trains one GAN per entry of
   `par_gan.discriminators` on the members (fl_privacy/defenses/par_gan.py).
2. The attacker gets the shuffled candidate records plus the discriminators (white-box) or the
   generated samples (black-box) and returns scores (fl_privacy/attacks/gan_membership.py); it never
   sees who is a member.
3. The evaluation loads the membership labels and scores the rankings (accuracy, ROC AUC), and the
   oracle judges the samples. Writes `par_gan_table.{json,csv}`, `samples_k{K}.png`, `summary.json`.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torchvision.utils import save_image

from fl_privacy.attacks.gan_membership import nearest_sample_scores, white_box_scores
from fl_privacy.data.datasets import ImageDataset, load_splits
from fl_privacy.defenses.par_gan import ParGanSettings, train_par_gan
from fl_privacy.errors import ConfigError
from fl_privacy.evaluation.gan_membership import membership_scores
from fl_privacy.evaluation.oracle import FeatureSpace, OracleSettings, frechet_distance, load_or_train_oracle
from fl_privacy.evaluation.sample_quality import sample_quality
from fl_privacy.results import write_csv, write_json
from fl_privacy.seeding import PAR_GAN, derive_seed

log = logging.getLogger(__name__)


def draw_membership(train: ImageDataset, members: int, seed: int) -> tuple[torch.Tensor, np.ndarray]:
    """`members` members and as many non-members from `train`, shuffled together.

    Returns the candidate records (what the attacker gets) and the membership labels (the truth,
    for the evaluation only)."""
    if 2 * members > len(train):
        raise ConfigError("par_gan.members", members, f"members and as many non-members must fit in the "
                          f"train split ({len(train)} records): at most {len(train) // 2}")
    rng = np.random.default_rng(seed)
    chosen = rng.permutation(len(train))[:2 * members]
    is_member = np.zeros(2 * members, dtype=bool)
    is_member[:members] = True
    order = rng.permutation(2 * members)
    return train.images[torch.as_tensor(chosen[order])], is_member[order]


def settings_for(par_gan: DictConfig, k: int) -> ParGanSettings:
    return ParGanSettings(num_discriminators=k, steps=int(par_gan.steps), batch_size=int(par_gan.batch_size),
                          latent_dim=int(par_gan.latent_dim), generator_lr=float(par_gan.generator_lr),
                          discriminator_lr=float(par_gan.discriminator_lr),
                          discriminator_dropout=float(par_gan.discriminator_dropout),
                          log_every=int(par_gan.log_every))


def run_par_gan(cfg: DictConfig, run_dir: Path) -> dict:
    """Run the experiment of `cfg.par_gan` and write its table, sample grids and summary into `run_dir`."""
    started = time.monotonic()
    par_gan, seed = cfg.par_gan, int(cfg.seed)
    torch.set_num_threads(int(par_gan.torch_threads))
    splits = load_splits(cfg.data, seed)
    candidates, is_member = draw_membership(splits.train, int(par_gan.members), derive_seed(seed, PAR_GAN, 0))
    members, non_members = candidates[is_member], candidates[~is_member]  # the lab's side
    oracle = load_or_train_oracle(splits, OracleSettings.from_cfg(cfg.oracle), seed)
    space = FeatureSpace(oracle, int(cfg.oracle.components))
    baseline = frechet_distance(space(members), space(non_members))
    log.info("PAR-GAN: %d members, %d non-members from the train split; oracle held-out accuracy %.3f; "
             "Fréchet distance members vs non-members %.1f", len(members), len(non_members),
             oracle.heldout_accuracy, baseline)
    rows = []
    for k in par_gan.discriminators:
        gan = train_par_gan(members, settings_for(par_gan, int(k)), seed=derive_seed(seed, PAR_GAN, 1))
        samples = gan.generator.sample(int(par_gan.samples), seed=derive_seed(seed, PAR_GAN, 2))
        save_image(samples[:100], run_dir / f"samples_k{k}.png", nrow=10)
        # the attacker's side: candidates and what each attacker sees, never `is_member`
        white = white_box_scores(gan.discriminators, candidates)
        pixel = nearest_sample_scores(candidates, samples, int(par_gan.neighbours))
        feature = nearest_sample_scores(candidates, samples, int(par_gan.neighbours), embed=space)
        # the evaluation's side
        row = {"discriminators": int(k), "steps": int(par_gan.steps),
               "epochs_per_record": int(par_gan.steps) * int(par_gan.batch_size) / len(members)}
        for name, scores in (("white_box_max", white["max"]), ("white_box_mean", white["mean"]),
                             ("black_box_pixel", pixel), ("black_box_feature", feature)):
            for metric, value in membership_scores(scores, is_member).items():
                row[f"{name}_{metric}"] = value
        row.update(sample_quality(oracle, space, samples, non_members))
        row["train_seconds"] = gan.seconds
        rows.append(row)
        log.info("PAR-GAN k=%d: %s", k, {key: round(value, 3) for key, value in row.items()})
    write_json(run_dir / "par_gan_table.json", rows)
    write_csv(run_dir / "par_gan_table.csv", rows)
    summary = {"config": OmegaConf.to_container(cfg, resolve=True), "par_gan": rows,
               "baseline": {"frechet_members_vs_non_members": baseline,
                            "oracle_heldout_accuracy": oracle.heldout_accuracy},
               "wall_seconds": time.monotonic() - started}
    write_json(run_dir / "summary.json", summary)
    return summary
