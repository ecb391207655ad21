"""How well the GAN attack works, measured by the oracle after every attack round.

Per round, from the generator the adversary published to the lab and a fixed batch of latent vectors:
- `victim_share`: fraction of samples the oracle classifies as the victim class;
- `victim_confidence`: the oracle's mean probability of the victim class;
- `frechet_distance`: Fréchet distance between generated and real victim-class samples in the
  oracle's feature space (penultimate layer -> top principal components of the oracle's
  training features -> Gaussian fits); compare with `baseline.frechet_other_vs_victim`, the same
  distance between real other-class samples and real victim-class samples;
- `diversity_ratio`: mean pairwise feature distance of the samples / that of real victim samples.
The baseline also holds the oracle's rejection rate on noise families it was never trained on.

Real samples come from the training split (the victim's own data; in the control, where no one
holds the victim class, the same unused images), never from the oracle's training data.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fl_privacy.data.images import DataSplits, image_shape_of
from fl_privacy.evaluation.oracle import (
    HELDOUT_NOISE,
    FeatureSpace,
    Oracle,
    frechet_distance,
    mean_pairwise_distance,
    rejection_rates,
)
from fl_privacy.figures import plot_image_rows
from fl_privacy.models import DCGANGenerator
from fl_privacy.results import save_image_grid, save_torch
from fl_privacy.run_layout import GAN_PROGRESSION, gan_samples_file, generator_file

log = logging.getLogger(__name__)

GRID_SAMPLES = 64
PROGRESSION_COLUMNS = 10
PROGRESSION_ROWS = 8
REJECTION_SAMPLES = 300  # noise images per held-out family for the oracle's rejection rate


def _class_images(splits: DataSplits, classes: list[int], count: int, seed: int) -> torch.Tensor:
    """Up to `count` training-split images of `classes`, drawn with `seed`."""
    members = torch.isin(splits.train.labels, torch.tensor(classes)).nonzero().squeeze(1)
    order = torch.randperm(len(members), generator=torch.Generator().manual_seed(seed))
    return splits.train.images[members[order[:count]]]


@dataclass
class AttackRound:
    round: int
    samples: torch.Tensor
    metrics: dict


class GanAttackMonitor:
    """Scores the adversary's generator each round and draws the sample grids and progression."""

    def __init__(self, run_dir: Path, splits: DataSplits, oracle: Oracle, space: FeatureSpace,
                 victim_class: int, num_samples: int, seed: int, save_generators: bool = False) -> None:
        self.run_dir = Path(run_dir)
        self.save_generators = save_generators
        self.oracle = oracle
        self.space = space
        self.victim_class = victim_class
        self.num_samples = num_samples
        self.seed = seed
        others = [c for c in range(splits.num_classes) if c != victim_class]
        self.real_victim = _class_images(splits, [victim_class], num_samples, seed)
        self.victim_features = space(self.real_victim)
        other_features = space(_class_images(splits, others, len(self.real_victim), seed))
        per_class = {c: frechet_distance(space(_class_images(splits, [c], num_samples, seed)),
                                         self.victim_features) for c in others}
        nearest = min(per_class, key=per_class.__getitem__)
        self.victim_diversity = mean_pairwise_distance(self.victim_features)
        self.baseline = {
            "victim_class": victim_class,
            "real_victim_samples": len(self.real_victim),
            "frechet_other_vs_victim": frechet_distance(other_features, self.victim_features),
            "frechet_nearest_class_vs_victim": per_class[nearest],
            "nearest_class": nearest,
            "oracle_heldout_accuracy": oracle.heldout_accuracy,
            "oracle_victim_share_on_real_victim": self._share(self.real_victim),
            "oracle_rejection_heldout_noise": rejection_rates(oracle, HELDOUT_NOISE, REJECTION_SAMPLES, seed),
        }
        self.rounds: list[AttackRound] = []

    def _share(self, images: torch.Tensor) -> float:
        return (self.oracle.probabilities(images).argmax(1) == self.victim_class).float().mean().item()

    def score(self, samples: torch.Tensor) -> dict:
        """The oracle's verdict on generated `samples`."""
        probabilities, raw = self.oracle.judge(samples)
        features = self.space.project(raw)
        return {
            "victim_share": (probabilities.argmax(1) == self.victim_class).float().mean().item(),
            "victim_confidence": probabilities[:, self.victim_class].mean().item(),
            "frechet_distance": frechet_distance(features, self.victim_features),
            "diversity_ratio": mean_pairwise_distance(features) / self.victim_diversity,
        }

    def __call__(self, server_round: int, published: dict | None) -> dict:
        """Metrics for the generator the adversary published this round (empty when it did not attack)."""
        if published is None:
            return {}
        generator = DCGANGenerator(int(published["latent_dim"]), image_shape_of(self.real_victim))
        generator.load_state_dict(published["generator"])
        if self.save_generators:
            save_torch(generator_file(self.run_dir, server_round),
                       {"latent_dim": int(published["latent_dim"]), "generator": published["generator"]})
        samples = generator.sample(self.num_samples, self.seed)
        if not torch.isfinite(samples).all():
            log.warning("round %d: the generator's samples are not finite (the global model it trained "
                        "against diverged?); not scored", server_round)
            return {}
        metrics = self.score(samples)
        save_image_grid(gan_samples_file(self.run_dir, server_round),
                        samples[:GRID_SAMPLES])
        self.rounds.append(AttackRound(server_round, samples[:PROGRESSION_COLUMNS], metrics))
        log.info("round %d: GAN attack: oracle victim share %.3f, Fréchet %.0f (other classes %.0f), "
                 "diversity %.2f", server_round, metrics["victim_share"], metrics["frechet_distance"],
                 self.baseline["frechet_other_vs_victim"], metrics["diversity_ratio"])
        return metrics

    def state_dict(self) -> dict:
        """The rounds scored so far (for a resumed run's progression figure and summary)."""
        return {"rounds": [{"round": r.round, "samples": r.samples, "metrics": r.metrics}
                           for r in self.rounds]}

    def load_state_dict(self, state: dict) -> None:
        self.rounds = [AttackRound(int(r["round"]), r["samples"], dict(r["metrics"]))
                       for r in state["rounds"]]

    def finish(self) -> dict:
        """Draw the progression figure; return the baseline and the last attack round's metrics."""
        if self.rounds:
            picks = np.unique(np.linspace(0, len(self.rounds) - 1, PROGRESSION_ROWS).round().astype(int))
            chosen = [self.rounds[i] for i in picks]
            plot_image_rows([r.samples for r in chosen] + [self.real_victim[:PROGRESSION_COLUMNS]],
                            [f"round {r.round}" for r in chosen] + ["real victim"],
                            self.run_dir / GAN_PROGRESSION,
                            f"GAN attack on class {self.victim_class}: generated samples by round")
        last = self.rounds[-1] if self.rounds else None
        return {"baseline": self.baseline, "attack_rounds": len(self.rounds),
                "first_attack_round": self.rounds[0].round if self.rounds else None,
                "final_round": last.round if last else None, "final": last.metrics if last else {}}
