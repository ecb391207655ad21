import numpy as np
import pytest

from fl_privacy.config.schema import PartitionSettings
from fl_privacy.data.partition import partition_indices
from fl_privacy.errors import ConfigError

LABELS = np.repeat(np.arange(10), 40)


def part(name, num_clients, seed=0, **extra):
    return partition_indices(LABELS, num_clients, PartitionSettings(name=name, **extra), seed)


def assert_disjoint_cover(parts, total):
    joined = np.concatenate(parts)
    assert len(joined) == len(set(joined.tolist())), "partitions overlap"
    assert sorted(joined.tolist()) == list(range(total)), "partitions miss examples"


@pytest.mark.parametrize("name,extra", [("iid", {}), ("dirichlet", {"alpha": 0.3, "min_size": 5}),
                                        ("one_class", {})])
def test_partitions_are_disjoint_cover_and_deterministic(name, extra):
    parts = part(name, 10, **extra)
    assert_disjoint_cover(parts, len(LABELS))
    again = part(name, 10, **extra)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again, strict=True))
    other = part(name, 10, seed=1, **extra)
    if name != "one_class":
        assert any(not np.array_equal(a, b) for a, b in zip(parts, other, strict=True))


def test_one_class_gives_client_i_class_i():
    parts = part("one_class", 10)
    for client, indices in enumerate(parts):
        assert set(LABELS[indices].tolist()) == {client}
        assert len(indices) == 40


def test_one_class_splits_classes_among_extra_clients():
    parts = part("one_class", 20)
    assert_disjoint_cover(parts, len(LABELS))
    for client, indices in enumerate(parts):
        assert set(LABELS[indices].tolist()) == {client % 10}
        assert len(indices) == 20


def test_one_class_needs_enough_examples_per_client():
    # partition.split_classes is gone (one_class always splits classes); the remaining limit is a class
    # with fewer examples than the clients sharing it (40 examples, 50 clients per class here).
    with pytest.raises(ConfigError, match="simulation.num_clients"):
        part("one_class", 500)


def test_iid_class_counts_are_balanced():
    parts = part("iid", 4)
    sizes = [len(p) for p in parts]
    assert max(sizes) - min(sizes) <= 1
    for indices in parts:
        counts = np.bincount(LABELS[indices], minlength=10)
        assert counts.min() > 0


def test_dirichlet_small_alpha_is_skewed_and_respects_min_size():
    parts = part("dirichlet", 10, alpha=0.1, min_size=5)
    assert min(len(p) for p in parts) >= 5
    dominant = [np.bincount(LABELS[p], minlength=10).max() / len(p) for p in parts]
    assert np.mean(dominant) > 0.5
