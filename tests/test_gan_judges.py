"""Issue 28: the GAN judges (shared, cached, refused when made for something else), the headline that
cannot exceed its ceiling, and the record-level test that stays valid when samples are dependent."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from fl_privacy.config.schema import OracleSettings
from fl_privacy.data.images import ImageDataset
from fl_privacy.errors import ConfigError
from fl_privacy.evaluation.gan_judges import (
    SCALE_FLOOR,
    Judge,
    LeNetJudge,
    agreement,
    judge_cache_path,
    load_or_train_judge,
)
from fl_privacy.evaluation.gan_records import plant_near_copies, record_test, run_record_test
from fl_privacy.evaluation.oracle import OracleCNN


def _blobs(count: int, seed: int) -> ImageDataset:
    """Three classes of 12x12 images: a bright square in one of three places, plus noise."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(count) % 3
    images = 0.1 * torch.rand(count, 1, 12, 12, generator=generator)
    for i, label in enumerate(labels.tolist()):
        images[i, 0, 4 * label:4 * label + 4, 4:8] += 0.8
    return ImageDataset(images.clamp(0, 1), labels)


@pytest.fixture
def judge_settings(tmp_path) -> OracleSettings:
    return OracleSettings(epochs=3, batch_size=16, components=4, cache_dir=str(tmp_path / "judges"))


@pytest.mark.usefixtures("one_torch_thread")
def test_a_judge_is_cached_once_and_a_cache_made_for_another_data_set_or_architecture_is_refused(
        judge_settings):
    data, heldout = _blobs(60, 0), _blobs(30, 1)
    first = load_or_train_judge(data, heldout, 3, "blobs", "oracle_cnn", 0, judge_settings)
    assert isinstance(first.model, OracleCNN) and first.heldout_accuracy > 0.9
    again = load_or_train_judge(data, heldout, 3, "blobs", "oracle_cnn", 0, judge_settings)
    assert torch.equal(first.judge(heldout.images)[0], again.judge(heldout.images)[0])  # reused, same weights
    path = first.cache_path
    # the same file under the name another data set's / architecture's judge would have
    for dataset, architecture, found in (("other_set", "oracle_cnn", "dataset"),
                                         ("blobs", "lenet", "architecture")):
        wrong = judge_cache_path(judge_settings, dataset, architecture, 0)
        shutil.copy(path, wrong)
        with pytest.raises(ConfigError) as refused:
            load_or_train_judge(data, heldout, 3, dataset, architecture, 0, judge_settings)
        message = str(refused.value)
        assert "\n" not in message and message.startswith("evaluation.oracle.cache_dir=")
        assert f"{found} " in message and "refusing" in message
    # another judge seed is another cache entry: trained anew, never the first one's file
    reseeded = judge_settings.model_copy(update={"judge_seed": 7})
    other = load_or_train_judge(data, heldout, 3, "blobs", "oracle_cnn", 0, reseeded)
    assert other.cache_path != path and other.cache_path.exists()


@pytest.mark.usefixtures("one_torch_thread")
def test_a_judge_standardises_with_its_real_training_data_and_its_ceiling_skips_what_it_trained_on(
        judge_settings):
    data, heldout = _blobs(60, 0), _blobs(30, 1)
    slower = judge_settings.model_copy(update={"epochs": 15, "lr": 0.003})  # tanh + avg-pooling: slower
    judge = load_or_train_judge(data, heldout, 3, "blobs", "lenet", 1, slower)
    assert isinstance(judge.model, LeNetJudge) and isinstance(judge, Judge)
    standardised = judge.features(data.images)
    spread = np.sqrt(judge.scaler.var_)
    typical = spread >= SCALE_FLOOR * np.median(spread[spread > 0])
    assert np.allclose(standardised.mean(0), 0, atol=1e-6) and np.allclose(standardised.std(0)[typical], 1)
    assert (standardised.std(0)[~typical] < 1).all()  # near-silent units are not blown up to unit spread
    mixed = torch.cat([data.images[:5], heldout.images[:7]])
    assert judge.trained_on(mixed).tolist() == [True] * 5 + [False] * 7
    real_ones = torch.cat([data.images[data.labels == 1], heldout.images[heldout.labels == 1]])
    ceiling, n = judge.ceiling(real_ones, 1)
    assert n == int((heldout.labels == 1).sum()) and 0.9 <= ceiling <= 1


def test_judge_agreement_and_kappa():
    victim = torch.tensor([[0.1, 0.9], [0.9, 0.1], [0.2, 0.8], [0.7, 0.3]])
    assert agreement(victim, victim, 1) == {"agree": 1.0, "cohen_kappa": 1.0}
    flipped = victim.flip(1)
    assert agreement(victim, flipped, 1) == {"agree": 0.0, "cohen_kappa": -1.0}


def test_the_record_test_is_not_fooled_by_dependent_samples_that_share_one_nearest_member():
    """A collapsed generator: 200 samples at one point whose nearest real record is a member. Every sample's
    nearest record is a member (share 1.0; a Wilson interval over 200 would read [0.98, 1]), yet this says
    nothing: under the permutation of member labels that one record is a member half of the time."""
    rng = np.random.default_rng(3)
    members, nonmembers = rng.normal(size=(60, 5)), rng.normal(size=(60, 5))
    collapsed = np.repeat(members[:1] + 0.3 * rng.normal(size=(1, 5)), 200, axis=0)
    result = record_test(collapsed, members, nonmembers, seed=0, resamples=400)
    assert result["nearest_is_member"] == 1.0
    low, high = result["nearest_is_member_null"]
    assert low == 0.0 and high == 1.0  # the null band of a dependent sample spans everything
    assert result["p_value"] > 0.2


def test_the_record_test_catches_planted_near_copies_and_not_fresh_draws():
    rng = np.random.default_rng(0)
    members, nonmembers = rng.normal(size=(60, 5)), rng.normal(size=(60, 5))
    copies = members[rng.integers(0, 60, 80)] + 0.05 * rng.normal(size=(80, 5))
    leaked = record_test(copies, members, nonmembers, seed=0, resamples=500)
    assert leaked["p_value"] < 0.01 and leaked["nearest_is_member"] > 0.9
    fresh = record_test(rng.normal(size=(80, 5)), members, nonmembers, seed=0, resamples=500)
    assert fresh["p_value"] > 0.05
    assert fresh["nearest_is_member_null"][0] < 0.5 < fresh["nearest_is_member_null"][1]


def test_planted_near_copies_and_the_run_level_test_over_rounds():
    members = torch.rand(40, 1, 6, 6)
    nonmembers = torch.rand(40, 1, 6, 6)
    fresh = [torch.rand(100, 1, 6, 6, generator=torch.Generator().manual_seed(r)) for r in range(3)]
    planted, count = plant_near_copies(fresh[0], members, 0.2, seed=1, noise=0.02)
    assert count == 20 and planted.min() >= 0 and planted.max() <= 1
    changed = (planted != fresh[0]).flatten(1).any(1)
    assert int(changed.sum()) == 20
    nearest = torch.cdist(planted[changed].flatten(1), members.flatten(1)).min(1).values
    assert nearest.max() < 0.02 * 6 * 3  # each planted sample sits by a member
    assert plant_near_copies(fresh[0], members, 0.0, seed=1)[1] == 0

    def flat(images: torch.Tensor) -> np.ndarray:
        return images.flatten(1).numpy().astype(np.float64)

    rounds = [flat(plant_near_copies(f, members, 0.2, seed=r, noise=0.02)[0]) for r, f in enumerate(fresh)]
    leaked = run_record_test(rounds, flat(members), flat(nonmembers), seed=0, resamples=300)
    assert leaked["rounds"] == 3 and leaked["p_value"] < 0.01 and leaked["nn_gap"] > 0
    null = run_record_test([flat(f) for f in fresh], flat(members), flat(nonmembers), seed=0, resamples=300)
    assert null["p_value"] > 0.05


def test_the_gan_table_shows_each_judges_share_beside_its_ceiling_never_their_ratio(tmp_path):
    from fl_privacy.report.gan_table import gan_table
    from fl_privacy.results import write_json

    for seed, share in ((0, 1.0), (1, 0.98)):
        job = tmp_path / str(seed)
        (job / ".hydra").mkdir(parents=True)
        (job / ".hydra" / "overrides.yaml").write_text(f"- +experiment=gan_attribution\n- seed={seed}\n")
        write_json(job / "summary.json", {"status": "completed"})
        central = {"accuracy": 0.8, "per_class_accuracy": [0.9, 0.8, 0.7, 0.1 + 0.2 * seed]}
        (job / "metrics.jsonl").write_text(json.dumps({"round": 20, "central": central}) + "\n")
        judges = {"oracle_cnn": {"share": share, "ceiling": 0.93},
                  "lenet": {"share": share - 0.1, "ceiling": 0.88}}
        kappa = 0.5 if seed == 0 else None  # null: both judges gave one verdict to every sample
        final = {"round": 20, "judges": judges, "judge_agreement": {"agree": 0.9, "cohen_kappa": kappa},
                 "frechet": 500.0, "frechet_floor": 50.0, "frechet_over_floor": 10.0, "kid": 0.2,
                 "kid_se": 0.01}
        write_json(job / "gan" / "evaluation.json",
                   {"baseline": {"victim_class": 3}, "final": final, "records_run": {"p_value": 0.4},
                    "planted_fraction": 0.0})
    lines = gan_table(tmp_path).splitlines()
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    assert {"oracle_cnn share", "oracle_cnn ceiling", "lenet share", "lenet ceiling"} <= set(header)
    assert not any("/ ceiling" in column or "relative" in column for column in header)
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]
    assert [row[1] for row in rows[:2]] == ["0", "1"] and rows[2][1].startswith("mean (range), n = 2")
    assert rows[0][header.index("oracle_cnn share")] == "1.000"
    assert rows[0][header.index("oracle_cnn ceiling")] == "0.930"
    assert rows[1][header.index("victim-class accuracy")] == "0.300"
    assert rows[2][header.index("oracle_cnn share")] == "0.990 (0.980–1.000)"
    assert rows[1][header.index("kappa")] == "-" and rows[2][header.index("kappa")] == "0.500"
