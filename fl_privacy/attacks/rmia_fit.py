"""RMIA's offline scaling `a` fitted on the auditor's own reference models, as Privacy Meter does
(Zarifzadeh et al., ICML 2024, Sec. 4 and App. B; Privacy Meter's offline `a` search).

The auditor knows which population records each of its reference models trained on. It plays the attack
against reference model 0 as if it were the target: candidates are half of the population (their truth:
whether model 0 trained on them), the other half serves as the population z, and the reference models
are those independent of model 0 (model 1 trained on exactly model 0's complement, so it is left out:
that would be an online reference). For every `a` on a grid, the AUC of the offline RMIA scores against
that truth; the `a` with the best AUC is used on the real target. Only the auditor's own models and
population are touched, never the target's members.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from torch import nn

from fl_privacy.data.images import ImageDataset

A_GRID = tuple(round(0.1 * step, 1) for step in range(11))  # Privacy Meter's 0, 0.1, ..., 1


class Reference(Protocol):
    """A reference model and the population records it trained on (`membership_inference.ReferenceModel`)."""

    @property
    def model(self) -> nn.Module: ...

    @property
    def population_in(self) -> torch.Tensor: ...


# offline RMIA: (target, candidates, population z, references, a, gamma) -> scores
# (`membership_inference.rmia_offline`, passed in so the two modules do not import each other)
RmiaScorer = Callable[[nn.Module, ImageDataset, ImageDataset, Sequence[Any], float, float], np.ndarray]


def fit_rmia_a(population: ImageDataset, references: Sequence[Reference], scorer: RmiaScorer,
               gamma: float = 1.0, grid: Sequence[float] = A_GRID) -> tuple[float, dict[float, float]]:
    """(the best `a`, AUC per `a` of the grid) of offline RMIA (`scorer`) against reference model 0, with
    the references independent of it (all but models 0 and 1) as its reference set. Needs ≥ 3 models."""
    if len(references) < 3:
        raise ValueError("fitting RMIA's a needs at least 3 reference models (model 0 as the target, "
                         "model 1 is its complement, the rest as references)")
    target, helpers = references[0], list(references[2:])
    order = np.arange(len(population.labels))
    candidates_at, z_at = order[0::2], order[1::2]
    truth = target.population_in.numpy()[candidates_at]
    candidates, z = population.subset(candidates_at), population.subset(z_at)
    aucs = {float(a): float(roc_auc_score(truth, scorer(target.model, candidates, z, helpers, a, gamma)))
            for a in grid}
    best = max(aucs, key=lambda a: (aucs[a], -abs(a - 0.3)))  # ties: nearest the paper's default
    return best, aucs
