"""The post-run GAN evaluation (`fl-privacy gan-eval RUN`): every kept generator against the truth.

Reads the generators a run kept (`evaluation.oracle.save_generators`), rebuilds the run's federation
for the truth (the victim's records and the held-out non-members of `data.record_split`), and scores
each attack round: the oracle's victim share relative to its share on real victim images (the
ceiling), Fréchet distance (the oracle's PCA feature space) and KID (its raw 128 penultimate
features) to the real victim images beside the real-vs-real floor (members
vs non-members) and the real-other-classes yardstick, diversity, and the record-level test
(`evaluation.gan_records`) in the oracle's feature space and in pixel space. Writes
`gan/evaluation.json`; re-runnable over finished runs.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from fl_privacy.config.schema import Settings
from fl_privacy.data.federation import build_federation
from fl_privacy.data.images import image_shape_of
from fl_privacy.evaluation.gan_records import kid, record_test, set_distance_test
from fl_privacy.evaluation.oracle import (
    HELDOUT_NOISE,
    FeatureSpace,
    frechet_distance,
    load_or_train_oracle,
    mean_pairwise_distance,
    rejection_rates,
)
from fl_privacy.models import DCGANGenerator
from fl_privacy.results import RunFileError, load_tensors, write_json
from fl_privacy.run_layout import GAN_EVALUATION, GAN_GENERATORS
from fl_privacy.seeding import Stream, derive_seed

log = logging.getLogger(__name__)



def _pixels(images: torch.Tensor) -> np.ndarray:
    return images.flatten(1).numpy().astype(np.float64)


def evaluate_generators(run_dir: Path, settings: Settings) -> dict:
    """Score every kept generator of the run; write and return `gan/evaluation.json`'s content."""
    chosen = settings.evaluation.oracle.evaluate_rounds
    files = [path for path in sorted((Path(run_dir) / GAN_GENERATORS).glob("round_*.pt"))
             if chosen is None or int(path.stem.split("_")[1]) in chosen]
    if not files:
        raise RunFileError(f"{Path(run_dir) / GAN_GENERATORS}: no generators kept (of the rounds in "
                           "evaluation.oracle.evaluate_rounds); run with "
                           "evaluation.oracle.save_generators=true")
    federation = build_federation(settings.federation)
    splits, victim = federation.splits, settings.attack.gan.victim_class
    if not len(federation.record_members):
        raise RunFileError(f"{run_dir}: the run has no record split; "
                           f"run with data.record_split.classes=[{victim}]")
    seed = derive_seed(settings.seed, Stream.GAN_EVALUATION)
    oracle = load_or_train_oracle(splits, settings.evaluation.oracle, settings.seed)
    space = FeatureSpace(oracle, settings.evaluation.oracle.components)
    members = splits.train.images[federation.record_members]
    nonmembers = splits.train.images[federation.record_nonmembers]
    real = torch.cat([members, nonmembers])
    others = splits.train.labels != victim
    order = torch.randperm(int(others.sum()), generator=torch.Generator().manual_seed(seed))
    other = splits.train.images[others.nonzero().squeeze(1)[order[:len(real)]]]
    sets = (("members", members), ("nonmembers", nonmembers), ("real", real), ("other", other))
    feats = {name: space(images) for name, images in sets}  # for Fréchet, diversity and the record test
    raw = {name: oracle.features(images) for name, images in sets}  # for KID: the oracle's 128 features
    ceiling = (oracle.probabilities(real).argmax(1) == victim).float().mean().item()
    diversity = mean_pairwise_distance(feats["real"])
    baseline: dict[str, object] = {
        "victim_class": victim, "members": len(members), "nonmembers": len(nonmembers),
        "oracle_share_on_real_victim": ceiling,
        "oracle_rejection_heldout_noise": rejection_rates(oracle, HELDOUT_NOISE, 300, seed),
        "frechet_floor_members_vs_nonmembers": frechet_distance(feats["members"], feats["nonmembers"]),
        "frechet_other_vs_victim": frechet_distance(feats["other"], feats["real"]),
        "kid_floor_members_vs_nonmembers": kid(raw["members"], raw["nonmembers"], seed),
        "kid_other_vs_victim": kid(raw["real"], raw["other"], seed),
        "diversity_real_victim": diversity,
    }
    rounds: list[dict] = []
    for path in files:
        saved = load_tensors(path)
        generator = DCGANGenerator(int(saved["latent_dim"]), image_shape_of(real))
        generator.load_state_dict(saved["generator"])
        samples = generator.sample(settings.evaluation.oracle.samples_per_round, seed)
        if not torch.isfinite(samples).all():
            raise RunFileError(f"{path}: the generator's samples are not finite (the run's model diverged)")
        probabilities, sample_raw = oracle.judge(samples)
        features = space.project(sample_raw)
        share = (probabilities.argmax(1) == victim).float().mean().item()
        rounds.append({
            "round": int(path.stem.split("_")[1]), "victim_share": share, "relative_share": share / ceiling,
            "frechet": frechet_distance(features, feats["real"]),
            "frechet_members": frechet_distance(features, feats["members"]),
            "frechet_nonmembers": frechet_distance(features, feats["nonmembers"]),
            **kid(raw["real"], sample_raw, seed),
            "diversity_ratio": mean_pairwise_distance(features) / diversity,
            "records_features": record_test(features, feats["members"], feats["nonmembers"], seed),
            "records_pixels": record_test(_pixels(samples), _pixels(members), _pixels(nonmembers), seed),
            "frechet_gap_test": set_distance_test(features, feats["members"], feats["nonmembers"],
                                                  frechet_distance, seed),
        })
        last = rounds[-1]
        log.info("round %d: relative share %.3f, KID %.4f, member-NN share (features) %.3f, p %.3f",
                 last["round"], last["relative_share"], last["kid"],
                 last["records_features"]["nearest_is_member"], last["records_features"]["p_value"])
    result = {"baseline": baseline, "samples": settings.evaluation.oracle.samples_per_round,
              "rounds": rounds, "final": rounds[-1]}
    write_json(Path(run_dir) / GAN_EVALUATION, result)
    return result
