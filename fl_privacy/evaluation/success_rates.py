"""Success rates with error bars and trivial baselines for gradient-inversion reconstructions.

An image counts as *recognisably reconstructed* when its SSIM to the truth is at least `RECOGNISABLE_SSIM`
and above the SSIM of its class-mean baseline (the mean of other images of the same class: what a server
that knows only the label could draw). Proportions get a Wilson 95% interval (scipy's `binomtest`),
medians a bootstrap 95% interval (scipy's `bootstrap`). Each image's baselines (blank, class mean, a random
other image of its class) are scored with the same PSNR / SSIM.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.stats import binomtest, bootstrap

from fl_privacy.data.images import ImageDataset
from fl_privacy.evaluation.reconstruction import psnr, score_reconstruction, ssim

RECOGNISABLE_SSIM = 0.5
BOOTSTRAP_SEED = 0


def baseline_images(truth: ImageDataset, reference: ImageDataset, seed: int) -> dict[str, torch.Tensor]:
    """Per truth image: a blank (black) image, the mean of `reference`'s images of its class and one random
    `reference` image of its class (`reference` holds other images than the truth: the test split)."""
    rng = np.random.default_rng(seed)
    by_class = {int(c): torch.nonzero(reference.labels == c).flatten() for c in truth.labels.unique()}
    means = {c: reference.images[rows].mean(dim=0) for c, rows in by_class.items()}
    labels = [int(c) for c in truth.labels]
    return {"blank": torch.zeros_like(truth.images),
            "class_mean": torch.stack([means[c] for c in labels]),
            "same_class_image": torch.stack([reference.images[int(rng.choice(by_class[c].numpy()))]
                                             for c in labels])}


def baseline_scores(truth: ImageDataset, reference: ImageDataset, seed: int) -> dict[str, dict[str, list]]:
    """PSNR and SSIM of every baseline against each truth image."""
    return {name: {"psnr": psnr(images, truth.images).tolist(), "ssim": ssim(images, truth.images).tolist()}
            for name, images in baseline_images(truth, reference, seed).items()}


def recognisable(image_ssim: list[float], class_mean_ssim: list[float]) -> list[bool]:
    """Which reconstructions are recognisable (SSIM >= 0.5 and above the class-mean baseline's)."""
    return [s >= RECOGNISABLE_SSIM and s > b for s, b in zip(image_ssim, class_mean_ssim, strict=True)]


def wilson(hits: int, n: int) -> dict:
    """A proportion with its Wilson 95% interval."""
    interval = binomtest(hits, n).proportion_ci(method="wilson")
    return {"hits": hits, "n": n, "share": hits / n, "ci95": [interval.low, interval.high]}


def median_ci(values: list[float]) -> dict:
    """The median with a percentile-bootstrap 95% interval (a single value has a point interval)."""
    data = np.asarray(values, dtype=float)
    if len(data) < 2 or np.ptp(data) == 0:
        return {"median": float(np.median(data)), "ci95": [float(np.median(data))] * 2, "n": len(data)}
    result = bootstrap((data,), np.median, confidence_level=0.95, method="percentile",
                       random_state=BOOTSTRAP_SEED)
    interval = result.confidence_interval
    return {"median": float(np.median(data)), "ci95": [float(interval.low), float(interval.high)],
            "n": len(data)}


def success_rates(image_scores: dict[str, list[float]], baselines: dict[str, dict[str, list]]) -> dict:
    """A cell's table row: recognisable share (Wilson CI), median PSNR / SSIM (bootstrap CI) of the
    reconstructions and of each baseline, over all its images."""
    hits = recognisable(image_scores["ssim"], baselines["class_mean"]["ssim"])
    return {"recognisable": wilson(sum(hits), len(hits)),
            "reconstruction": {name: median_ci(image_scores[name]) for name in ("psnr", "ssim")},
            "baselines": {base: {name: median_ci(values) for name, values in scores.items()}
                          for base, scores in baselines.items()}}


def best_candidate_psnr(candidates: list[torch.Tensor] | None, truth: torch.Tensor) -> list[float] | None:
    """Per true image, the best PSNR any candidate reconstruction reaches (each candidate matched to the
    truth on its own): an **upper bound** that peeks at the truth, never an attack result."""
    if not candidates:
        return None
    per_candidate = torch.stack([score_reconstruction(c, truth).psnr for c in candidates])
    return per_candidate.max(dim=0).values.tolist()


@dataclass
class Cell:
    """The pooled per-image scores of a table cell (e.g. one captured round): the reconstructions', their
    baselines', and the best-candidate PSNR upper bound where the attack kept candidates."""

    scores: dict[str, list[float]] = field(default_factory=lambda: {"psnr": [], "ssim": []})
    baselines: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    upper_bound_psnr: list[float] = field(default_factory=list)

    def add(self, capture: dict, baselines: dict[str, dict[str, list]], upper: list[float] | None) -> None:
        """One scored capture (`score_capture`'s dict) with its images' baselines."""
        for name in self.scores:
            self.scores[name] += capture["images"][name]
        for base, values in baselines.items():
            for name in self.scores:
                self.baselines.setdefault(base, {}).setdefault(name, []).extend(values[name])
        self.upper_bound_psnr += upper or []

    def __add__(self, other: Cell) -> Cell:
        merged = Cell()
        for cell in (self, other):
            merged.add({"images": cell.scores}, cell.baselines, cell.upper_bound_psnr)
        return merged

    def rates(self) -> dict:
        """`success_rates` of the pooled images, plus the labelled best-candidate PSNR upper bound."""
        result = success_rates(self.scores, self.baselines)
        if self.upper_bound_psnr:
            result["upper_bound_best_candidate_by_psnr"] = median_ci(self.upper_bound_psnr)
        return result
