"""Does the GAN attack leak the victim's records, or only its class? Distances with floors and a test.

Given generated samples and the real images of the victim class split into members (the victim's
training records) and non-members (as many records of the class that nobody trained on):
- nearest-neighbour distances of every sample to each set, in the oracle's feature space and in pixel
  space, and a permutation test of "samples are closer to members than to non-members": the statistic
  is the mean over samples of (distance to the nearest non-member - distance to the nearest member);
  under no record leakage the member/non-member labels are exchangeable (the split was drawn at
  random), so the null distribution permutes them (scipy.stats.permutation_test);
- the share of samples whose nearest real image is a member (about the members' share of the real
  images, 0.5, under no record leakage), with its Wilson interval (samples are i.i.d. given the generator);
- a set-level version of the same test: distance(samples, non-members) - distance(samples, members)
  for a distance between sets (Fréchet), with the same permutation null;
- KID (unbiased MMD with the cubic polynomial kernel; torchmetrics, the oracle's features fed through
  an identity extractor) with the standard error over its random subsets.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import numpy as np
import torch
from scipy import stats
from torch import nn
from torchmetrics.image.kid import KernelInceptionDistance

KID_SUBSETS = 100
PERMUTATIONS = 2000
SET_PERMUTATIONS = 500  # each recomputes two set distances (Fréchet: two 32x32 eigendecompositions)


def kid(real: np.ndarray, fake: np.ndarray, seed: int, subsets: int = KID_SUBSETS) -> dict[str, float]:
    """KID between feature rows `real` and `fake`: the mean over `subsets` random subsets (each half as
    large as the smaller set, so that they differ) and its standard error (std / sqrt(subsets); subsets
    overlap, so it is optimistic)."""
    size = min(len(real), len(fake)) // 2
    with warnings.catch_warnings():  # "will save all extracted features": a few hundred rows here
        warnings.simplefilter("ignore", UserWarning)
        metric = KernelInceptionDistance(feature=nn.Identity(), subsets=subsets, subset_size=size)
    metric.update(torch.as_tensor(real, dtype=torch.float64), real=True)
    metric.update(torch.as_tensor(fake, dtype=torch.float64), real=False)
    with torch.random.fork_rng():
        torch.manual_seed(seed)  # torchmetrics draws its subsets from the global generator
        mean, std = metric.compute()
    return {"kid": float(mean), "kid_se": float(std) / math.sqrt(subsets)}


def record_test(samples: np.ndarray, members: np.ndarray, nonmembers: np.ndarray, seed: int,
                resamples: int = PERMUTATIONS) -> dict[str, float]:
    """Nearest-member and nearest-non-member distances of the samples and the one-sided permutation test
    that samples sit closer to members; also the share of samples whose nearest real image is a member."""
    real = np.concatenate([members, nonmembers])
    distances = torch.cdist(torch.as_tensor(samples, dtype=torch.float64),
                            torch.as_tensor(real, dtype=torch.float64)).numpy()

    def statistic(member_rows: np.ndarray, nonmember_rows: np.ndarray) -> float:
        return float((distances[:, nonmember_rows].min(1) - distances[:, member_rows].min(1)).mean())

    rows = np.arange(len(real))
    member_rows, nonmember_rows = rows[:len(members)], rows[len(members):]
    test = stats.permutation_test((member_rows, nonmember_rows), statistic, permutation_type="independent",
                                  alternative="greater", n_resamples=resamples, vectorized=False,
                                  random_state=seed)
    to_member = distances[:, member_rows].min(1)
    to_nonmember = distances[:, nonmember_rows].min(1)
    closer = int((to_member < to_nonmember).sum())
    interval = stats.binomtest(closer, len(samples)).proportion_ci(confidence_level=0.95, method="wilson")
    return {"nn_member": float(to_member.mean()), "nn_nonmember": float(to_nonmember.mean()),
            "nn_gap": float(test.statistic), "p_value": float(test.pvalue),
            "nearest_is_member": closer / len(samples), "nearest_is_member_low": float(interval.low),
            "nearest_is_member_high": float(interval.high), "member_fraction": len(members) / len(real)}


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
