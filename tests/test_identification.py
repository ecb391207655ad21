"""Identification, the inversion success rule: a copy of the truth passes, a label-only guess passes at
chance (~1 / pool size), and the SSIM used agrees with scikit-image."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import binomtest
from skimage.metrics import structural_similarity

from fl_privacy.data.images import ImageDataset
from fl_privacy.evaluation.identification import (
    IdentificationCell,
    baseline_reconstructions,
    identify,
    negative_control_pairs,
    pairwise_ssim,
    score_batch,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _pool(per_class: int, classes: int, generator: torch.Generator, side: int = 8) -> ImageDataset:
    images = torch.rand(per_class * classes, 1, side, side, generator=generator)
    return ImageDataset(images, torch.arange(classes).repeat_interleave(per_class))


def test_pairwise_ssim_equals_scikit_image() -> None:
    generator = torch.Generator().manual_seed(0)
    a = torch.rand(3, 2, 12, 10, generator=generator)
    b = (a[[2, 0]] + 0.2 * torch.rand(2, 2, 12, 10, generator=generator)).clamp(0, 1)
    ours = pairwise_ssim(a, b)
    for i in range(3):
        for j in range(2):
            expected = structural_similarity(a[i].double().numpy(), b[j].double().numpy(), data_range=1.0,
                                             channel_axis=0)
            assert ours[i, j].item() == pytest.approx(expected, abs=1e-9)


def test_an_exact_copy_is_identified_whatever_its_slot_and_a_blank_is_not() -> None:
    generator = torch.Generator().manual_seed(1)
    pool = _pool(95, 2, generator)
    truth = ImageDataset(torch.rand(4, 1, 8, 8, generator=generator), torch.tensor([0, 0, 1, 1]))
    shuffled = truth.images[[2, 0, 3, 1]]
    for distance in ("mse", "ssim"):
        assert identify(shuffled, truth, pool, distance) == [True] * 4
        assert identify(torch.zeros_like(shuffled), truth, pool, distance) == [False] * 4


def test_label_only_guess_is_identified_at_chance() -> None:
    """One example per batch: truth and pool images are exchangeable, so a random pool image of the right
    class (left out of its own comparison) is nearest to the truth 1 / (pool size) of the time."""
    generator = torch.Generator().manual_seed(2)
    rng = np.random.default_rng(2)
    per_class, trials = 91, 1500
    pool = _pool(per_class, 2, generator, side=4)
    hits = 0
    for _ in range(trials):
        label = int(rng.integers(2))
        truth = ImageDataset(torch.rand(1, 1, 4, 4, generator=generator), torch.tensor([label]))
        images, exclude = baseline_reconstructions(truth.labels, pool, (1, 4, 4), rng)["label_only"]
        hits += identify(images, truth, pool, "mse", exclude, min_pool=per_class - 1)[0]
    chance = 1 / per_class  # the truth against the pool's 90 others
    assert binomtest(hits, trials, chance).pvalue > 1e-3, hits
    assert hits / trials <= 0.05


def test_a_pool_smaller_than_required_is_refused() -> None:
    generator = torch.Generator().manual_seed(3)
    pool = _pool(50, 1, generator)
    truth = ImageDataset(torch.rand(1, 1, 8, 8, generator=generator), torch.tensor([0]))
    with pytest.raises(ValueError, match="at least 90"):
        identify(truth.images, truth, pool, "mse")


def test_score_batch_and_cell_summary_report_every_rule_with_wilson_intervals() -> None:
    generator = torch.Generator().manual_seed(4)
    pool = _pool(92, 2, generator)
    truth = ImageDataset(torch.rand(2, 1, 8, 8, generator=generator), torch.tensor([0, 1]))
    batch = score_batch(truth.images.flip(0), truth.labels, truth, pool, seed=0)
    assert set(batch) == {"attack", "blank", "class_mean", "label_only"}
    cell = IdentificationCell()
    cell.add(batch)
    summary = cell.summary()
    attack = summary["identified"]["attack"]
    assert (attack["hits"], attack["n"], attack["share"]) == (2, 2, 1.0)
    assert 0 < attack["low"] < 1.0 and attack["high"] == pytest.approx(1.0)
    assert summary["identified_by"]["blank"]["ssim"]["share"] == 0.0


def test_negative_control_partners_are_other_captures_of_the_same_cell() -> None:
    assert negative_control_pairs([(1, 4), (1, 4), (5, 4), (1, 4), (5, 1)]) == [1, 3, None, 0, None]


def test_scores_json_holds_identified_shares_for_attack_baselines_and_negative_control(
        tmp_path, settings_factory, mnist):
    import json

    from fl_privacy.lab.pipelines.inversion_pipeline import score_reconstructions
    from fl_privacy.results import save_torch, write_json
    from fl_privacy.run_layout import ATTACK_SCORES, RECONSTRUCTIONS, TRUTH, round_file

    settings = settings_factory("+experiment=dlg")  # seed 0, mnist_offline, test_fraction 0.2: `mnist`
    train = mnist
    for partition, indices in enumerate([[0, 1], [2, 3]]):
        truth = train.subset(indices)
        write_json(round_file(tmp_path, TRUTH, 1, partition, ".json"), {"indices": indices})
        save_torch(round_file(tmp_path, RECONSTRUCTIONS, 1, partition, ".pt"),
                   {"images": truth.images, "labels": truth.labels, "loss": 0.0, "seconds": 0.0,
                    "attack": "dlg", "metadata": {"round": 1, "partition": partition}})
    score_reconstructions(tmp_path, settings)
    scores = json.loads((tmp_path / ATTACK_SCORES).read_text())
    identified = scores["identified"]
    assert set(identified) == {"attack", "blank", "class_mean", "label_only", "negative_control"}
    assert {k for k in identified["attack"]} >= {"share", "low", "high", "n"}
    assert identified["attack"]["n"] == 4 and identified["attack"]["share"] == 1.0
    assert identified["blank"]["share"] == 0.0
    # the other capture's exact images are not this capture's: the control vanishes
    assert identified["negative_control"]["share"] == 0.0
    assert scores["identification_by_round"]["1"]["identified_by"]["label_only"]["ssim"]["n"] == 4
