"""The GAN attack's per-round headline, scored by two shared judges (`evaluation.gan_judges`).

For each judge: the raw victim share of the samples beside the judge's ceiling (its share on the real
victim images it never trained on) -- two numbers, never their ratio, so no headline can exceed what the
judge can give real data; the Fréchet distance to the real victim images beside the real-vs-real floor
(members vs non-members), and KID with its subset standard error; all in the judge's features standardised
with its real training images' statistics (Fréchet on their top principal components, KID on all units,
torchmetrics' polynomial kernel (x.y / d + 1)^3). Then the two judges' agreement on the samples, diversity,
and the record-level tests (`evaluation.gan_records`) in pixels and in the primary judge's features.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from fl_privacy.data.images import image_shape_of
from fl_privacy.evaluation.gan_judges import Judge, agreement
from fl_privacy.evaluation.gan_records import kid, record_test, set_distance_test
from fl_privacy.evaluation.oracle import HELDOUT_NOISE, frechet_distance, mean_pairwise_distance

REJECTION_SAMPLES = 300  # noise images per held-out family for a judge's rejection rate


def pixels(images: torch.Tensor) -> np.ndarray:
    """Images as float64 pixel rows."""
    return images.flatten(1).numpy().astype(np.float64)


@dataclass
class RealSets:
    """The truth a run's samples are scored against: the victim's records (members), as many held-out
    records of the class (non-members) and as many real images of the other classes."""

    victim: int
    members: torch.Tensor
    nonmembers: torch.Tensor
    other: torch.Tensor

    @property
    def real(self) -> torch.Tensor:
        return torch.cat([self.members, self.nonmembers])


class _JudgeView:
    """One judge's view of the real sets: standardised features, PCA projections, floors and ceiling."""

    def __init__(self, judge: Judge, sets: RealSets, seed: int) -> None:
        self.judge = judge
        self.victim = sets.victim
        self.std = {name: judge.features(images) for name, images in
                    (("members", sets.members), ("nonmembers", sets.nonmembers), ("real", sets.real),
                     ("other", sets.other))}
        self.pcs = {name: judge.project(values) for name, values in self.std.items()}
        self.ceiling, self.ceiling_n = judge.ceiling(sets.real, sets.victim)
        self.floor = frechet_distance(self.pcs["members"], self.pcs["nonmembers"])
        shape = image_shape_of(sets.members)
        rejected = judge.num_classes  # the "not data" class
        self.baseline = {
            "architecture": judge.name, "heldout_accuracy": judge.heldout_accuracy,
            "cache": str(judge.cache_path),
            "ceiling": self.ceiling, "ceiling_n": self.ceiling_n,
            "real_victim_trained_on": int(judge.trained_on(sets.real).sum()),
            "rejection_heldout_noise": {
                name: judge.share(family(REJECTION_SAMPLES, shape, torch.Generator().manual_seed(seed)),
                                  rejected)
                for name, family in HELDOUT_NOISE.items()},
            "frechet_floor_members_vs_nonmembers": self.floor,
            "frechet_other_vs_victim": frechet_distance(self.pcs["other"], self.pcs["real"]),
            "kid_floor_members_vs_nonmembers": kid(self.std["members"], self.std["nonmembers"], seed),
            "kid_other_vs_victim": kid(self.std["real"], self.std["other"], seed),
        }

    def score(self, probabilities: torch.Tensor, standardised: np.ndarray, seed: int) -> dict[str, Any]:
        projected = self.judge.project(standardised)
        frechet = frechet_distance(projected, self.pcs["real"])
        return {"share": float((probabilities.argmax(1) == self.victim).float().mean()),
                "ceiling": self.ceiling, "ceiling_n": self.ceiling_n,
                "confidence": float(probabilities[:, self.victim].mean()),
                "frechet": frechet, "frechet_floor": self.floor, "frechet_over_floor": frechet / self.floor,
                **kid(self.std["real"], standardised, seed)}


class GanScorer:
    """Scores generated samples of a run against its real sets with every judge (the first is primary)."""

    def __init__(self, judges: list[Judge], sets: RealSets, seed: int) -> None:
        self.sets = sets
        self.seed = seed
        self.views = [_JudgeView(judge, sets, seed) for judge in judges]
        primary = self.views[0]
        self.diversity = mean_pairwise_distance(primary.pcs["real"])
        self.baseline: dict[str, Any] = {
            "victim_class": sets.victim, "members": len(sets.members), "nonmembers": len(sets.nonmembers),
            "primary_judge": primary.judge.name,
            "judges": {view.judge.name: view.baseline for view in self.views},
            "diversity_real_victim": self.diversity,
        }

    def score(self, samples: torch.Tensor) -> dict[str, Any]:
        """Everything measured on one round's samples."""
        verdicts = [view.judge.judge(samples) for view in self.views]
        judged = {view.judge.name: view.score(probabilities, standardised, self.seed)
                  for view, (probabilities, standardised) in zip(self.views, verdicts, strict=True)}
        primary, (_, standardised) = self.views[0], verdicts[0]
        features = primary.judge.project(standardised)
        head = judged[primary.judge.name]
        return {
            "judges": judged,
            "judge_agreement": agreement(verdicts[0][0], verdicts[-1][0], self.sets.victim),
            "frechet": head["frechet"], "frechet_floor": head["frechet_floor"],
            "frechet_over_floor": head["frechet_over_floor"], "kid": head["kid"], "kid_se": head["kid_se"],
            "frechet_members": frechet_distance(features, primary.pcs["members"]),
            "frechet_nonmembers": frechet_distance(features, primary.pcs["nonmembers"]),
            "diversity_ratio": mean_pairwise_distance(features) / self.diversity,
            "records_pixels": record_test(pixels(samples), pixels(self.sets.members),
                                          pixels(self.sets.nonmembers), self.seed),
            "records_features": record_test(features, primary.pcs["members"], primary.pcs["nonmembers"],
                                            self.seed),
            "frechet_gap_test": set_distance_test(features, primary.pcs["members"], primary.pcs["nonmembers"],
                                                  frechet_distance, self.seed),
        }
