"""RMIA's `a` fitted on the auditor's reference models (Privacy Meter's offline search)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fl_privacy.attacks.membership_inference import ReferenceModel, rmia_offline
from fl_privacy.attacks.rmia_fit import A_GRID, fit_rmia_a
from fl_privacy.data.images import ImageDataset
from fl_privacy.errors import ConfigError


class Lookup(nn.Module):
    """A 'model' whose true-class logit for record i (its index is pixel 0) is `table[i]`."""

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.table = table

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        logit = self.table[images[:, 0, 0, 0].long()]
        return torch.stack([logit, torch.zeros_like(logit)], dim=1)


def references(bonus: float, count: int = 6, size: int = 400) -> tuple[ImageDataset, list[ReferenceModel]]:
    """Population records of varying difficulty and `count` models in complementary pairs, each raising
    the logit of the records it trained on by `bonus` (0: no memorisation)."""
    generator = torch.Generator().manual_seed(0)
    difficulty = torch.randn(size, generator=generator)
    population = ImageDataset(torch.arange(size, dtype=torch.float32).reshape(size, 1, 1, 1),
                              torch.zeros(size, dtype=torch.long))
    models = []
    for index in range(count):
        if index % 2 == 0:
            member = torch.zeros(size, dtype=torch.bool)
            member[torch.randperm(size, generator=generator)[:size // 2]] = True
        else:
            member = ~models[-1].population_in
        table = difficulty + bonus * member + 0.3 * torch.randn(size, generator=generator)
        models.append(ReferenceModel(Lookup(table), member))
    return population, models


def test_the_fitted_a_is_the_best_on_the_references_and_finds_leakage_only_where_there_is_some():
    population, models = references(bonus=1.5)
    best, aucs = fit_rmia_a(population, models, rmia_offline)
    assert list(aucs) == list(A_GRID) and best in A_GRID and aucs[best] == max(aucs.values())
    assert aucs[best] > 0.75  # memorised records are found on the auditor's own model
    population, models = references(bonus=0.0)
    _, aucs = fit_rmia_a(population, models, rmia_offline)
    assert max(aucs.values()) < 0.6  # nothing memorised: chance on every a


def test_fitting_needs_three_reference_models(settings_factory):
    population, models = references(bonus=1.0, count=2)
    with pytest.raises(ValueError, match="at least 3"):
        fit_rmia_a(population, models, rmia_offline)
    with pytest.raises(ConfigError, match="attack.membership.rmia.num_reference"):
        settings_factory("attack.membership.rmia.fit_a=true", "attack.membership.rmia.num_reference=2")
