"""The GAN attack's attribution design: who holds the victim class in each arm, the record-level split,
the passive adversary, the record-level test and KID, and the oracle's held-out noise families."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fl_privacy.attacks.gan import AdversaryState, attack_round, make_generator_optimizer
from fl_privacy.attacks.views import InsiderView
from fl_privacy.config.schema import GanAttackSettings
from fl_privacy.data.federation import build_federation
from fl_privacy.data.images import ImageDataset
from fl_privacy.evaluation.gan_records import kid, record_test, set_distance_test
from fl_privacy.evaluation.oracle import (
    HELDOUT_NOISE,
    TRAINING_NOISE,
    frechet_distance,
    oracle_training_data,
    synthetic_noise,
)
from fl_privacy.models import DCGANGenerator, SeedCNN
from fl_privacy.training import TrainSettings

ARMS = ["gan_attribution", "gan_attribution_no_warmup_leak", "gan_attribution_warmup_only",
        "gan_attribution_control", "gan_attribution_passive"]


@pytest.fixture(scope="module")
def federations():
    from conftest import make_settings

    settings = {arm: make_settings(f"+experiment={arm}") for arm in ARMS}
    return {arm: (settings[arm], build_federation(settings[arm].federation)) for arm in ARMS}


def _holds(federation, indices, cls: int) -> bool:
    return cls in federation.splits.train.labels.numpy()[indices]


def test_warmup_exclusion_keeps_the_class_out_of_the_warmup_only(federations):
    _, full = federations["gan_attribution"]
    _, arm = federations["gan_attribution_no_warmup_leak"]
    labels = full.splits.train.labels.numpy()
    assert _holds(full, full.warmup_indices, 3) and not _holds(arm, arm.warmup_indices, 3)
    # the rest of the warm-up and every client's data are the full arm's
    assert np.array_equal(arm.warmup_indices, full.warmup_indices[labels[full.warmup_indices] != 3])
    assert all(np.array_equal(a, b) for a, b in zip(arm.client_indices, full.client_indices, strict=True))
    assert np.array_equal(arm.client_indices[3], arm.record_members)


def test_client_exclusion_keeps_the_class_out_of_every_client_only(federations):
    _, full = federations["gan_attribution"]
    for name, warmup_has_it in (("gan_attribution_warmup_only", True), ("gan_attribution_control", False)):
        settings, arm = federations[name]
        assert not any(_holds(arm, c, 3) for c in arm.client_indices)
        assert _holds(arm, arm.warmup_indices, 3) is warmup_has_it
        # the victim is absent; every other client holds what it holds in the full arm
        others = [c for i, c in enumerate(full.client_indices) if i != 3]
        assert all(np.array_equal(a, b) for a, b in zip(arm.client_indices, others, strict=True))
        assert settings.simulation.num_clients == 9


@pytest.mark.parametrize("arm", ARMS)
def test_members_and_nonmembers_are_disjoint_from_every_client_and_the_oracle(federations, arm):
    settings, federation = federations[arm]
    members, nonmembers = set(federation.record_members), set(federation.record_nonmembers)
    assert len(members) > 100 and abs(len(members) - len(nonmembers)) <= 1 and not members & nonmembers
    labels = federation.splits.train.labels.numpy()
    assert set(labels[list(members | nonmembers)]) == {settings.attack.gan.victim_class}
    for indices in [*federation.client_indices, federation.warmup_indices, federation.holdout_indices]:
        assert not nonmembers & set(indices.tolist())
    victim_holders = [set(c.tolist()) for c in federation.client_indices if _holds(federation, c, 3)]
    assert victim_holders in ([members], [])  # the victim holds exactly the members, when present
    # the oracle trains on the test split: no member or non-member image is among its images
    oracle_images = {bytes(x.numpy().tobytes()) for x in oracle_training_data(federation.splits).images}
    real = federation.splits.train.images[sorted(members | nonmembers)]
    assert not oracle_images & {bytes(x.numpy().tobytes()) for x in real}


def _adversary_round(inject: bool) -> int:
    torch.manual_seed(0)
    own = ImageDataset(torch.rand(12, 1, 28, 28), torch.randint(0, 2, (12,)))
    model = SeedCNN((1, 28, 28), 3)
    generator = DCGANGenerator(8, (1, 28, 28))
    state = AdversaryState(generator, make_generator_optimizer(generator, 1e-3))
    settings = GanAttackSettings(generator_steps=2, generator_batch_size=4, num_fakes=6, inject_fakes=inject,
                                 latent_dim=8, victim_class=1)
    before = [p.detach().clone() for p in generator.parameters()]
    view = InsiderView(own_data=own, model=model, server_round=1, announced_accuracy=None, fake_class=2)
    stats, _ = attack_round(view, state, settings, TrainSettings(1, 4, 0.1, "sgd"), [1])
    assert any(not torch.equal(a, b) for a, b in zip(before, generator.parameters(), strict=True))
    assert (state.pool is not None) is inject
    return stats.num_examples


def test_passive_adversary_trains_the_generator_but_injects_nothing():
    assert _adversary_round(inject=False) == 12
    assert _adversary_round(inject=True) == 12 + 6


def test_record_test_finds_copied_members_and_not_fresh_draws():
    rng = np.random.default_rng(0)
    members, nonmembers = rng.normal(size=(60, 5)), rng.normal(size=(60, 5))
    copies = members[rng.integers(0, 60, 80)] + 0.05 * rng.normal(size=(80, 5))
    leaked = record_test(copies, members, nonmembers, seed=0, resamples=500)
    assert leaked["p_value"] < 0.01 and leaked["nearest_is_member"] > 0.9
    assert leaked["nn_member"] < leaked["nn_nonmember"]
    fresh = record_test(rng.normal(size=(80, 5)), members, nonmembers, seed=0, resamples=500)
    assert fresh["p_value"] > 0.05
    assert fresh["nearest_is_member_null"][0] < 0.5 < fresh["nearest_is_member_null"][1]


def test_set_distance_test_finds_samples_drawn_around_members_only():
    rng = np.random.default_rng(1)
    members, nonmembers = rng.normal(size=(60, 10)), rng.normal(size=(60, 10))
    copies = members[rng.integers(0, 60, 100)] + 0.01 * rng.normal(size=(100, 10))
    leaked = set_distance_test(copies, members, nonmembers, frechet_distance, seed=0, resamples=100)
    assert leaked["gap"] > 0 and leaked["p_value"] < 0.05
    fresh = set_distance_test(rng.normal(size=(100, 10)), members, nonmembers, frechet_distance, seed=0,
                              resamples=100)
    assert fresh["p_value"] > 0.01  # a null draw: below 0.01 one time in a hundred


def test_kid_is_near_zero_for_one_distribution_and_grows_with_a_shift():
    rng = np.random.default_rng(0)
    same = kid(rng.normal(size=(200, 4)), rng.normal(size=(200, 4)), seed=0, subsets=20)
    shifted = kid(rng.normal(size=(200, 4)), rng.normal(size=(200, 4)) + 1.0, seed=0, subsets=20)
    assert abs(same["kid"]) < 3 * same["kid_se"] + 0.01
    assert shifted["kid"] > same["kid"] + 10 * shifted["kid_se"]


def test_oracle_rejection_class_is_validated_on_families_it_never_trained_on():
    assert not set(TRAINING_NOISE) & set(HELDOUT_NOISE)
    for families in (TRAINING_NOISE, HELDOUT_NOISE):
        noise = synthetic_noise(20, (1, 28, 28), seed=0, families=families)
        assert noise.shape == (20, 1, 28, 28) and noise.min() >= 0 and noise.max() <= 1


def _olivetti_fixture(root) -> np.ndarray:
    """A stand-in for scikit-learn's cached Olivetti file: 400 random 64x64 uint8 faces."""
    import joblib
    from sklearn.datasets._base import _pkl_filepath

    faces = np.random.default_rng(0).integers(0, 256, (400, 64 * 64), dtype=np.uint8)
    joblib.dump(faces, _pkl_filepath(str(root), "olivetti.pkz"), compress=6)
    return faces


def test_olivetti_loader_reads_the_file_under_data_root(settings_factory, tmp_path):
    from fl_privacy.data.datasets import load_splits

    _olivetti_fixture(tmp_path)
    settings = settings_factory("+experiment=gan_attack_olivetti", f"data.root={tmp_path}")
    splits = load_splits(settings.data, seed=0)
    assert splits.num_classes == 40 and splits.image_shape == (1, 64, 64)
    assert len(splits.train) == 320 and len(splits.test) == 80
    assert torch.bincount(splits.train.labels).tolist() == [8] * 40
    federation = build_federation(settings.federation)
    assert [set(federation.client_classes(p)) for p in range(40)] == [{p} for p in range(40)]


def test_olivetti_offline_fails_with_one_line_naming_the_key(settings_factory, tmp_path):
    from fl_privacy.data.datasets import load_splits
    from fl_privacy.errors import DataNotFoundError

    settings = settings_factory("data=olivetti", f"data.root={tmp_path}")
    with pytest.raises(DataNotFoundError, match="data.download=true") as caught:
        load_splits(settings.data, seed=0)
    assert str(tmp_path) in str(caught.value) and "\n" not in str(caught.value)
