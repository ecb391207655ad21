"""The post-run GAN evaluation (`fl-privacy gan-eval RUN`): every kept generator against the truth.

Reads the generators a run kept (`evaluation.oracle.save_generators`), rebuilds the run's federation
for the truth (the victim's records and the held-out non-members of `data.record_split`; without a record
split, the class's training images against its test images: `victim_records`), and scores
each attack round with two judges shared by every run (`evaluation.gan_judges`, trained once from
`evaluation.oracle.judge_seed`): each judge's raw victim share beside its ceiling (its share on real
victim images it never trained on), Fréchet distance over the real-vs-real floor (members vs
non-members) and KID ± its subset SE in standardised judge features, the judges' agreement, diversity,
and the record-level tests (`evaluation.gan_records`) per round and once per run over all scored
rounds (pixels, one permutation of the member labels for all rounds). With
`evaluation.oracle.planted_fraction` > 0 (the `gan_planted` preset) that share of every round's
samples is replaced by near-copies of member records: the positive control the test must catch.
Writes `gan/evaluation.json`; re-runnable over finished runs.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from fl_privacy.config.schema import Settings
from fl_privacy.data.federation import Federation, build_federation
from fl_privacy.data.images import image_shape_of
from fl_privacy.evaluation.gan_judges import load_judges
from fl_privacy.evaluation.gan_records import plant_near_copies, run_record_test
from fl_privacy.evaluation.gan_scoring import GanScorer, RealSets, pixels
from fl_privacy.models import DCGANGenerator
from fl_privacy.results import RunFileError, load_tensors, write_json
from fl_privacy.run_layout import GAN_EVALUATION, GAN_GENERATORS
from fl_privacy.seeding import Stream, derive_seed

log = logging.getLogger(__name__)


def victim_records(federation: Federation, victim: int) -> tuple[torch.Tensor, torch.Tensor, str]:
    """The real victim-class images the samples are compared with: (members, non-members, which).
    With `data.record_split` the victim's members and the held-out non-members it draws; without one
    (e.g. `gan_attack`, `dp_vs_gan`) every training image of the class against the class's test images.
    Both splits are random draws of the data seed, so the record test's permutation of the member /
    non-member labels stays valid either way."""
    splits = federation.splits
    if len(federation.record_members):
        return (splits.train.images[federation.record_members],
                splits.train.images[federation.record_nonmembers], "record_split")
    return (splits.train.images[splits.train.labels == victim],
            splits.test.images[splits.test.labels == victim], "train_vs_test")


def evaluate_generators(run_dir: Path, settings: Settings) -> dict:
    """Score every kept generator of the run; write and return `gan/evaluation.json`'s content."""
    oracle_settings = settings.evaluation.oracle
    chosen = oracle_settings.evaluate_rounds
    files = [path for path in sorted((Path(run_dir) / GAN_GENERATORS).glob("round_*.pt"))
             if chosen is None or int(path.stem.split("_")[1]) in chosen]
    if not files:
        raise RunFileError(f"{Path(run_dir) / GAN_GENERATORS}: no generators kept (of the rounds in "
                           "evaluation.oracle.evaluate_rounds); run with "
                           "evaluation.oracle.save_generators=true")
    federation = build_federation(settings.federation)
    splits, victim = federation.splits, settings.attack.gan.victim_class
    judges = load_judges(settings.data, oracle_settings)  # shared by every run: trained from judge_seed
    seed = derive_seed(settings.seed, Stream.GAN_EVALUATION)
    members, nonmembers, reference = victim_records(federation, victim)
    others = splits.train.labels != victim
    order = torch.randperm(int(others.sum()), generator=torch.Generator().manual_seed(seed))
    other = splits.train.images[others.nonzero().squeeze(1)[order[:len(members) + len(nonmembers)]]]
    scorer = GanScorer(judges, RealSets(victim, members, nonmembers, other), seed)
    rounds: list[dict] = []
    kept_pixels: list[np.ndarray] = []
    for path in files:
        saved = load_tensors(path)
        generator = DCGANGenerator(int(saved["latent_dim"]), image_shape_of(members))
        generator.load_state_dict(saved["generator"])
        samples = generator.sample(oracle_settings.samples_per_round, seed)
        if not torch.isfinite(samples).all():
            raise RunFileError(f"{path}: the generator's samples are not finite (the run's model diverged)")
        server_round = int(path.stem.split("_")[1])
        samples, planted = plant_near_copies(samples, members, oracle_settings.planted_fraction,
                                             derive_seed(seed, Stream.GAN_EVALUATION, server_round))
        kept_pixels.append(pixels(samples))
        rounds.append({"round": server_round, "planted": planted, **scorer.score(samples)})
        last = rounds[-1]
        log.info("round %d: %s; Fréchet / floor %.1f, KID %.3g ± %.2g; record test p (pixels) %.3g",
                 server_round, ", ".join(f"{name} share {j['share']:.3f} (ceiling {j['ceiling']:.3f})"
                                         for name, j in last["judges"].items()),
                 last["frechet_over_floor"], last["kid"], last["kid_se"], last["records_pixels"]["p_value"])
    record_run = run_record_test(kept_pixels, pixels(members), pixels(nonmembers), seed)
    result = {"baseline": scorer.baseline, "records_reference": reference,
              "samples": oracle_settings.samples_per_round,
              "judge_seed": oracle_settings.judge_seed, "planted_fraction": oracle_settings.planted_fraction,
              "records_run": {"space": "pixels", **record_run}, "rounds": rounds, "final": rounds[-1]}
    write_json(Path(run_dir) / GAN_EVALUATION, result)
    return result
