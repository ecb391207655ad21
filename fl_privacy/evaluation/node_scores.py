"""Score a reconstruction against a node's own data: optimal matching, identification, PSNR, labels.

A reconstruction is **identified** when, after optimal one-to-one matching (Hungarian, on MSE) to the node's
own images, it is nearer (MSE, pixels in [0, 1]) its matched image than every *other* image of that image's
class held elsewhere (`reference`: other nodes' data). A blank image, each image's class mean (from the
reference) and a label-only guess (a random reference image of each restored label, left out of its own
comparison) go through the same matching and rule beside it: a guess or a label alone must not pass (the
label-only guess passes at about own images of the class / (reference images of the class + 1), so the
reference should be as large as the user's data allows); uniform noise (where the attack starts) is the
negative control. The rule is the lab's identification rule
(`evaluation.identification`), with the node's own data as the truth (a reconstruction is matched to one of
the node's images, which may hold more than the batch) and other nodes' data as the comparison pool.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from fl_privacy.data.images import ImageDataset
from fl_privacy.evaluation.identification import baseline_reconstructions, pairwise_mse
from fl_privacy.evaluation.reconstruction import psnr
from fl_privacy.evaluation.success_rates import median_ci, wilson

NOISE_SEED = 0
BASELINES = ("blank", "uniform_noise", "class_mean", "label_only")


def match_to_truth(reconstruction: torch.Tensor, truth: torch.Tensor) -> np.ndarray:
    """For each reconstruction, the index of the truth image it is matched to (Hungarian on MSE); the truth
    may hold more images than the reconstruction (a batch out of the node's data)."""
    rows, cols = linear_sum_assignment(pairwise_mse(reconstruction, truth).numpy())
    matched = np.empty(len(reconstruction), dtype=np.int64)
    matched[rows] = cols
    return matched


def identified(reconstruction: torch.Tensor, own: torch.Tensor, own_labels: torch.Tensor,
               reference: torch.Tensor, reference_labels: torch.Tensor,
               exclude: Sequence[Sequence[int]] = ()) -> list[bool]:
    """Per matched pair: is the reconstruction nearer its own image than every reference image of its class?
    (`own[i]` is the image matched to `reconstruction[i]`; `exclude[i]`: reference indices left out of
    reconstruction i's comparison, e.g. the image a label-only guess copied; no same-class reference image:
    not identified.)"""
    to_own = ((reconstruction.double() - own.double()) ** 2).flatten(1).mean(dim=1)
    to_reference = pairwise_mse(reconstruction, reference) if len(reference) else None
    result = []
    for i, label in enumerate(own_labels.tolist()):
        same = (reference_labels == label).nonzero().flatten() if to_reference is not None else []
        if exclude and isinstance(same, torch.Tensor):
            same = same[~torch.isin(same, torch.as_tensor(exclude[i], dtype=torch.long))]
        result.append(bool(len(same)) and bool(to_own[i] < to_reference[i, same].min()))  # type: ignore[index]
    return result


def label_only_guess(restored_labels: torch.Tensor, reference: torch.Tensor, reference_labels: torch.Tensor,
                     seed: int) -> tuple[torch.Tensor, list[list[int]]]:
    """What a label alone gives: a random reference image of each restored label (any reference image
    where the reference lacks the label), and the index each copied, to leave out of its own comparison
    (identification's `label_only` baseline on the node's reference)."""
    return baseline_reconstructions(restored_labels.cpu(), ImageDataset(reference, reference_labels),
                                    reference.shape[1:], np.random.default_rng(seed))["label_only"]


def score_against_node(reconstruction: torch.Tensor, restored_labels: torch.Tensor, truth: torch.Tensor,
                       truth_labels: torch.Tensor, reference: torch.Tensor, reference_labels: torch.Tensor,
                       seed: int = 0) -> dict:
    """Identification share (Wilson 95% CI), median PSNR (bootstrap 95% CI), label accuracy of the matched
    pairs and label-count accuracy, and the blank, uniform-noise, class-mean and label-only baselines under
    the same rule (`seed` draws the noise and the label-only guess); `reference_per_class`: the reference's
    images of each class of the node's own data."""
    matched = match_to_truth(reconstruction, truth)
    own, own_labels = truth[matched], truth_labels[matched]
    hits = identified(reconstruction, own, own_labels, reference, reference_labels)
    values = psnr(reconstruction, own).tolist()
    result = {"images": len(reconstruction), "truth_pool": len(truth), "reference_pool": len(reference),
              "reference_per_class": {str(c): int((reference_labels == c).sum())
                                      for c in truth_labels.unique().tolist()},
              "matched": matched.tolist(), "identified": hits, "psnr": values,
              "identification": wilson(sum(hits), len(hits)), "median_psnr": median_ci(values),
              "label_accuracy": wilson(int((restored_labels.cpu() == own_labels.cpu()).sum()), len(hits)),
              "label_count_accuracy": _count_accuracy(restored_labels, own_labels)}
    # a negative control: the attack's starting point (uniform noise), drawn per capture (`seed`): a fixed
    # draw repeated the same few outcomes for the same images in every round
    noise = torch.rand(own.shape, generator=torch.Generator().manual_seed(NOISE_SEED + seed), dtype=own.dtype)
    baselines: dict[str, tuple[torch.Tensor, Sequence[Sequence[int]]]] = {
        "blank": (torch.zeros_like(own), []), "uniform_noise": (noise, [])}
    if len(reference):
        means = {c: reference[reference_labels == c].mean(dim=0) for c in reference_labels.unique().tolist()}
        guess = [means.get(int(c), torch.zeros_like(own[0])) for c in own_labels]
        baselines["class_mean"] = (torch.stack(guess), [])
        baselines["label_only"] = label_only_guess(restored_labels, reference, reference_labels, seed)
    result["baselines"] = {}
    for name, (images, exclude) in baselines.items():
        base_matched = match_to_truth(images, truth)
        base_own, base_labels = truth[base_matched], truth_labels[base_matched]
        base_hits = identified(images, base_own, base_labels, reference, reference_labels, exclude)
        result["baselines"][name] = {"identification": wilson(sum(base_hits), len(base_hits)),
                                     "median_psnr": median_ci(psnr(images, base_own).tolist())}
    return result


def _count_accuracy(predicted: torch.Tensor, truth: torch.Tensor) -> float:
    """Share of the label multiset recovered (`sum_c min(n_hat_c, n_c) / N`)."""
    size = int(max(int(predicted.max()), int(truth.max())) + 1)
    counts = torch.minimum(torch.bincount(predicted.cpu().long(), minlength=size),
                           torch.bincount(truth.cpu().long(), minlength=size))
    return float(counts.sum()) / max(len(truth), 1)


def pooled(findings: list[dict]) -> dict:
    """Identification and PSNR over every scored image of every finding (n = images)."""
    hits = [h for f in findings for h in f["identified"]]
    values = [v for f in findings for v in f["psnr"]]
    if not hits:
        return {}
    labels = sum(f["label_accuracy"]["hits"] for f in findings)
    out = {"identification": wilson(sum(hits), len(hits)), "median_psnr": median_ci(values),
           "label_accuracy": wilson(labels, len(hits))}
    for name in BASELINES:
        base = [f["baselines"][name]["identification"] for f in findings if name in f["baselines"]]
        if base:
            out[f"{name}_identification"] = wilson(sum(b["hits"] for b in base), sum(b["n"] for b in base))
    return out
