"""Membership inference against a GAN (LOGAN, Hayes et al. 2019): score records, never see labels.

Higher score = more likely a member of the GAN's training data. The attacker gets candidate records
and either the discriminators (white-box) or only generated samples (black-box); which records are
members is loaded by the evaluation, never passed here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn


@torch.no_grad()
def discriminator_scores(discriminators: Sequence[nn.Module], records: torch.Tensor,
                         batch_size: int = 500) -> np.ndarray:
    """Every discriminator's logit for every record: a k x N array (eval mode, no gradient)."""
    scores = []
    for discriminator in discriminators:
        discriminator.eval()
        device = next(discriminator.parameters()).device
        logits = [discriminator(records[start:start + batch_size].to(device)).flatten().cpu()
                  for start in range(0, len(records), batch_size)]
        scores.append(torch.cat(logits).numpy())
    return np.stack(scores)


def white_box_scores(discriminators: Sequence[nn.Module], records: torch.Tensor) -> dict[str, np.ndarray]:
    """LOGAN's white-box attack: a record the discriminator scores as more real is more likely a
    member. With several discriminators (PAR-GAN) the max and the mean over them."""
    scores = discriminator_scores(discriminators, records)
    return {"max": scores.max(0), "mean": scores.mean(0)}


def nearest_sample_scores(records: torch.Tensor, samples: torch.Tensor, neighbours: int = 1,
                          embed: Callable[[torch.Tensor], np.ndarray] | None = None) -> np.ndarray:
    """Black-box attack from generated samples only: minus the mean Euclidean distance of each record
    to its `neighbours` nearest samples, in pixel space or in the space `embed` maps images to."""
    if embed is None:
        a, b = records.flatten(1).double(), samples.flatten(1).double()
    else:
        a, b = torch.as_tensor(embed(records)).double(), torch.as_tensor(embed(samples)).double()
    distances = torch.cdist(a, b)
    nearest = distances.topk(min(neighbours, distances.shape[1]), dim=1, largest=False).values
    return -nearest.mean(1).numpy()


@torch.no_grad()
def monte_carlo_scores(records: torch.Tensor, samples: torch.Tensor, quantile: float = 0.001,
                       chunk: int = 256) -> np.ndarray:
    """Generator-only Monte-Carlo attack (Hilprecht et al., PoPETs 2019; the black-box attack of the
    PAR-GAN paper): the share of generated samples inside an epsilon-ball around each record, in pixel
    space. epsilon is the `quantile` of all record-to-sample distances (the attacker's own heuristic from
    its candidates and samples; no membership needed). Ties (records with no sample inside) score 0."""
    a, b = records.flatten(1).float(), samples.flatten(1).float()
    distances = torch.cat([torch.cdist(a[start:start + chunk], b) for start in range(0, len(a), chunk)])
    epsilon = torch.quantile(distances.flatten()[::max(1, distances.numel() // 10_000_000)], quantile)
    return (distances <= epsilon).double().mean(1).numpy()
