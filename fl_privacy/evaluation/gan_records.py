"""Does the GAN attack leak the victim's records, or only its class? Distances with floors and a test.

Given generated samples and the real images of the victim class split into members (the victim's
training records) and non-members (as many records of the class that nobody trained on):
- nearest-neighbour distances of every sample to each set, in the oracle's feature space and in pixel
  space, and a permutation test of "samples are closer to members than to non-members": the statistic
  is the mean over samples of (distance to the nearest non-member - distance to the nearest member);
  under no record leakage the member/non-member labels are exchangeable (the split was drawn at
  random), so the null distribution permutes them;
- the share of samples whose nearest real image is a member (about the members' share of the real
  images, 0.5, under no record leakage), descriptive, beside its permutation band (no binomial interval:
  samples of one generator are not independent draws for this question, they share nearest neighbours);
- one test per run over all its scored rounds (`run_record_test`), and the planted positive control
  (`plant_near_copies`) whose power curve is `benchmarks/gan_record_power.py`;
- a set-level version of the same test: distance(samples, non-members) - distance(samples, members)
  for a distance between sets (Fréchet), with the same permutation null;
- KID (unbiased MMD with the standard polynomial kernel (x.y / d + 1)^3; torchmetrics, standardised judge
  features fed through an identity extractor) with the standard error over its random subsets.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from scipy import stats
from torch import nn
from torchmetrics.image.kid import KernelInceptionDistance

KID_SUBSETS = 100
PERMUTATIONS = 2000
PLANT_NOISE = 0.1  # pixel-noise std of a planted near-copy (pixels in [0, 1])
SET_PERMUTATIONS = 200  # each recomputes two set distances (Fréchet: two 32x32 eigendecompositions)


def kid(real: np.ndarray, fake: np.ndarray, seed: int, subsets: int = KID_SUBSETS) -> dict[str, float]:
    """KID between feature rows `real` and `fake`: the mean over `subsets` random subsets (each half as
    large as the smaller set, so that they differ) and its standard error (std / sqrt(subsets); subsets
    overlap, so it is optimistic)."""
    size = min(len(real), len(fake)) // 2
    with warnings.catch_warnings():  # "will save all extracted features": a few hundred rows here
        warnings.simplefilter("ignore", UserWarning)
        metric = KernelInceptionDistance(feature=nn.Identity(), subsets=subsets, subset_size=size,
                                         degree=3, gamma=None, coef=1.0)  # gamma None: 1 / d
    metric.update(torch.as_tensor(real, dtype=torch.float64), real=True)
    metric.update(torch.as_tensor(fake, dtype=torch.float64), real=False)
    with torch.random.fork_rng():
        torch.manual_seed(seed)  # torchmetrics draws its subsets from the global generator
        mean, std = metric.compute()
    return {"kid": float(mean), "kid_se": float(std) / math.sqrt(subsets)}


def _member_masks(real: int, members: int, resamples: int, seed: int) -> torch.Tensor:
    """`resamples` random relabellings of `real` images with `members` member labels (resamples x real)."""
    generator = torch.Generator().manual_seed(seed)
    masks = torch.zeros(resamples, real, dtype=torch.bool)
    for row in masks:
        row[torch.randperm(real, generator=generator)[:members]] = True
    return masks


def _gap_and_share(distances: torch.Tensor, masks: torch.Tensor, chunk: int = 8
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per member labelling (row of `masks`): the mean over samples of (distance to the nearest non-member
    - distance to the nearest member), and the share of samples whose nearest real image is a member."""
    gaps, shares = [], []
    for part in masks.split(chunk):
        inside = part[:, None, :]
        to_member = torch.where(inside, distances[None], torch.inf).min(-1).values
        to_nonmember = torch.where(~inside, distances[None], torch.inf).min(-1).values
        gaps.append((to_nonmember - to_member).mean(1))
        shares.append((to_member < to_nonmember).double().mean(1))
    return torch.cat(gaps), torch.cat(shares)


def _p_value(observed: float, null: torch.Tensor) -> float:
    """One-sided permutation p-value, (1 + #{null >= observed}) / (1 + resamples): never 0, valid."""
    return float((1 + (null >= observed - 1e-12).sum()) / (1 + len(null)))


def record_test(samples: np.ndarray, members: np.ndarray, nonmembers: np.ndarray, seed: int,
                resamples: int = PERMUTATIONS) -> dict[str, Any]:
    """Do the samples sit closer to the victim's records than to held-out records of the class?

    One statistic per call: the mean over samples of (distance to the nearest non-member - distance to
    the nearest member), `nn_gap`, and its one-sided permutation p-value over the member / non-member
    labels. The labels were drawn at random, so under no record leakage they are exchangeable however
    dependent the samples are (a collapsed generator's samples share nearest neighbours); no interval
    that treats samples as independent is given. `nearest_is_member` (the share of samples whose nearest
    real image is a member) is descriptive, beside the 2.5-97.5% band of its permutation distribution,
    `nearest_is_member_null`, which widens with that dependence."""
    real = np.concatenate([members, nonmembers])
    distances = torch.cdist(torch.as_tensor(samples, dtype=torch.float64),
                            torch.as_tensor(real, dtype=torch.float64))
    actual = torch.zeros(1, len(real), dtype=torch.bool)
    actual[0, :len(members)] = True
    (gap,), (share,) = _gap_and_share(distances, actual)
    null_gap, null_share = _gap_and_share(distances, _member_masks(len(real), len(members), resamples, seed))
    low, high = torch.quantile(null_share, torch.tensor([0.025, 0.975], dtype=torch.float64)).tolist()
    to_member = distances[:, :len(members)].min(1).values
    to_nonmember = distances[:, len(members):].min(1).values
    return {"nn_member": float(to_member.mean()), "nn_nonmember": float(to_nonmember.mean()),
            "nn_gap": float(gap), "p_value": _p_value(float(gap), null_gap),
            "nearest_is_member": float(share), "nearest_is_member_null": [low, high],
            "member_fraction": len(members) / len(real), "resamples": resamples}


def run_record_test(rounds: list[np.ndarray], members: np.ndarray, nonmembers: np.ndarray, seed: int,
                    resamples: int = PERMUTATIONS) -> dict[str, float]:
    """The run's one record-level test: the nearest-neighbour gap of `record_test` averaged over every
    scored round's samples (`rounds`), with one permutation of the member labels applied to all rounds at
    once, so that the dependence between rounds (one generator's trajectory) is kept in the null."""
    real = torch.as_tensor(np.concatenate([members, nonmembers]), dtype=torch.float64)
    masks = _member_masks(len(real), len(members), resamples, seed)
    actual = torch.zeros(1, len(real), dtype=torch.bool)
    actual[0, :len(members)] = True
    observed, null = 0.0, torch.zeros(resamples, dtype=torch.float64)
    for samples in rounds:
        distances = torch.cdist(torch.as_tensor(samples, dtype=torch.float64), real)
        observed += float(_gap_and_share(distances, actual)[0][0]) / len(rounds)
        null += _gap_and_share(distances, masks)[0] / len(rounds)
    return {"nn_gap": observed, "p_value": _p_value(observed, null), "rounds": len(rounds),
            "resamples": resamples}


def plant_near_copies(samples: torch.Tensor, members: torch.Tensor, fraction: float, seed: int,
                      noise: float = PLANT_NOISE) -> tuple[torch.Tensor, int]:
    """The positive control: `samples` with round(fraction * len) of them, at random places, replaced by
    near-copies of random member records (the record plus Gaussian pixel noise of std `noise`, clipped to
    [0, 1]); returns the new samples and how many were planted."""
    count = int(round(fraction * len(samples)))
    if count == 0:
        return samples, 0
    generator = torch.Generator().manual_seed(seed)
    places = torch.randperm(len(samples), generator=generator)[:count]
    sources = torch.randint(len(members), (count,), generator=generator)
    copies = members[sources] + noise * torch.randn(members[sources].shape, generator=generator)
    planted = samples.clone()
    planted[places] = copies.clamp(0, 1).to(samples.dtype)
    return planted, count


def set_distance_test(samples: np.ndarray, members: np.ndarray, nonmembers: np.ndarray,
                      distance: Callable[[np.ndarray, np.ndarray], float], seed: int,
                      resamples: int = SET_PERMUTATIONS) -> dict[str, float]:
    """distance(samples, non-members) - distance(samples, members) (e.g. Fréchet) and the one-sided
    permutation p-value of its being that large when the member/non-member labels are exchangeable."""
    real = np.concatenate([members, nonmembers])

    def statistic(member_rows: np.ndarray, nonmember_rows: np.ndarray) -> float:
        return distance(samples, real[nonmember_rows]) - distance(samples, real[member_rows])

    rows = np.arange(len(real))
    test = stats.permutation_test((rows[:len(members)], rows[len(members):]), statistic,
                                  permutation_type="independent", alternative="greater",
                                  n_resamples=resamples, vectorized=False, random_state=seed)
    return {"gap": float(test.statistic), "p_value": float(test.pvalue)}
