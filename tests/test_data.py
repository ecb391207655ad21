import numpy as np
import pytest
import torch

from fl_privacy.data.datasets import load_splits
from fl_privacy.data.federation import build_federation
from fl_privacy.errors import DataNotFoundError


def test_mnist_offline_is_real_stratified_and_seeded(settings_factory):
    settings = settings_factory()
    splits = load_splits(settings.data, seed=0)
    assert splits.num_classes == 10 and splits.image_shape == (1, 28, 28)
    assert len(splits.train) == 4000 and len(splits.test) == 1000
    assert torch.bincount(splits.test.labels).tolist() == [100] * 10
    assert splits.train.images.min() >= 0.0 and splits.train.images.max() <= 1.0
    # real digits: mostly dark background with bright strokes
    assert 0.05 < splits.train.images.mean().item() < 0.25
    other = load_splits(settings.data, seed=1)
    assert not torch.equal(splits.test.images, other.test.images)


def test_federation_warmup_and_clients_are_disjoint(settings_factory):
    federation = build_federation(settings_factory().federation)
    warmup = set(federation.warmup_indices.tolist())
    assert len(warmup) == 200  # 5% of 4000
    seen = set()
    for indices in federation.client_indices:
        assert not seen & set(indices.tolist())
        seen |= set(indices.tolist())
    assert not warmup & seen
    assert len(warmup | seen) == 4000


def test_excluded_classes_leave_clients_and_warmup(settings_factory):
    settings = settings_factory("data.exclude_classes=[3]", "simulation.num_clients=9")
    federation = build_federation(settings.federation)
    labels = federation.splits.train.labels.numpy()
    assert 3 not in labels[federation.warmup_indices]
    assert all(3 not in labels[p] for p in federation.client_indices)
    assert 3 in federation.splits.test.labels.tolist()


def test_same_seed_same_partitions_different_seed_different(settings_factory):
    a = build_federation(settings_factory("partition=dirichlet").federation)
    b = build_federation(settings_factory("partition=dirichlet").federation)
    c = build_federation(settings_factory("partition=dirichlet", "seed=1").federation)
    assert all(np.array_equal(x, y) for x, y in zip(a.client_indices, b.client_indices,
                                                     strict=True))
    assert any(not np.array_equal(x, y) for x, y in zip(a.client_indices, c.client_indices,
                                                         strict=True))


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "cifar10"])
def test_missing_torchvision_dataset_says_which_option_to_set(settings_factory, tmp_path, name):
    settings = settings_factory(f"data={name}", f"data.root={tmp_path}")
    with pytest.raises(DataNotFoundError, match="data.download=true") as caught:
        load_splits(settings.data, seed=0)
    assert str(tmp_path) in str(caught.value)
