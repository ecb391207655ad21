"""The comparison pool of identification (issue 27): every image of the data set outside the batch, the
batch left out by content; with it a label-only guess on a 16-image one-class batch stays under 0.05, where
the ~100-a-class test split alone lets it pass ~0.09 of the time."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy.stats import binomtest

from fl_privacy.data.images import ImageDataset
from fl_privacy.evaluation.comparison_pool import comparison_pool, fingerprints, pool_sizes
from fl_privacy.evaluation.identification import baseline_reconstructions, identify

pytestmark = pytest.mark.usefixtures("one_torch_thread")

BATCH = 16


def test_the_batch_is_left_out_by_content_not_by_index() -> None:
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(30, 1, 4, 4, generator=generator)
    images[29] = images[3]  # a duplicate of a true image elsewhere in the data set
    data = ImageDataset(images, torch.arange(30) % 3)
    truth = ImageDataset(images[[7, 3, 12]].clone(), data.labels[[7, 3, 12]])  # copies, another order
    pool = comparison_pool(data, truth)
    assert len(pool) == 30 - 4
    left = set(fingerprints(pool.images))
    assert not left & set(fingerprints(truth.images))
    assert set(fingerprints(images[[0, 1, 2, 28]])) <= left
    # images 3 and 12 are of class 0, 7 of class 1; the duplicate 29 (class 2) goes with its original
    assert pool_sizes(pool.labels, truth.labels) == {0: 10 - 2, 1: 10 - 1}
    assert pool_sizes(pool.labels, torch.tensor([2])) == {2: 10 - 1}


def _label_only_rate(pool_size: int, draws: int, seed: int) -> tuple[int, int]:
    """Hits and images of a label-only guess on `draws` 16-image one-class batches, each batch drawn with
    `pool_size` other images of the class (i.i.d., so truth and pool are exchangeable), the pool built by
    `comparison_pool` from the whole data set."""
    generator, rng = torch.Generator().manual_seed(seed), np.random.default_rng(seed)
    hits = 0
    for _ in range(draws):
        size = BATCH + pool_size
        data = ImageDataset(torch.rand(size, 1, 6, 6, generator=generator),
                            torch.zeros(size, dtype=torch.long))
        order = torch.randperm(size, generator=generator)
        truth = data.subset(order[:BATCH])
        pool = comparison_pool(data, truth)
        assert len(pool) == pool_size
        images, exclude = baseline_reconstructions(truth.labels, pool, (1, 6, 6), rng)["label_only"]
        hits += sum(identify(images, truth, pool, "mse", exclude, min_pool=pool_size - 1))
    return hits, draws * BATCH


def test_a_label_only_guess_on_a_16_image_batch_passes_under_005_with_the_whole_data_set_as_pool() -> None:
    large_hits, n = _label_only_rate(480, draws=150, seed=1)
    small_hits, small_n = _label_only_rate(100, draws=150, seed=2)
    large, small = binomtest(large_hits, n), binomtest(small_hits, small_n)
    # ~480 a class (the offline MNIST's whole data set): at most ~batch / (pool + 1), well under 0.05
    assert large_hits / n <= BATCH / (480 + 1)
    assert large.proportion_ci(method="wilson").high < 0.05, large_hits
    # ~100 a class (the test split alone): the matching lets a guess pass well above 0.05
    assert small.proportion_ci(method="wilson").low > 0.05, small_hits
    assert small_hits / small_n <= BATCH / (100 + 1)
    assert small_hits / small_n > 2.5 * large_hits / n


def test_scores_json_uses_the_whole_data_set_as_pool_and_states_its_size(tmp_path, settings_factory, mnist):
    from fl_privacy.lab.pipelines.inversion_pipeline import score_reconstructions
    from fl_privacy.results import save_torch, write_json
    from fl_privacy.run_layout import ATTACK_SCORES, RECONSTRUCTIONS, TRUTH, round_file

    settings = settings_factory("+experiment=dlg")  # seed 0, mnist_offline, test_fraction 0.2: `mnist`
    for partition in range(2):
        indices = torch.nonzero(mnist.labels == partition).flatten()[:3].tolist()
        truth = mnist.subset(indices)
        write_json(round_file(tmp_path, TRUTH, 1, partition, ".json"), {"indices": indices})
        save_torch(round_file(tmp_path, RECONSTRUCTIONS, 1, partition, ".pt"),
                   {"images": truth.images.flip(0), "labels": truth.labels, "loss": 0.0, "seconds": 0.0,
                    "attack": "dlg", "metadata": {"round": 1, "partition": partition}})
    score_reconstructions(tmp_path, settings)
    scores = json.loads((tmp_path / ATTACK_SCORES).read_text())
    pool = scores["comparison_pool"]["per_class_min"]
    assert set(pool) == {"0", "1"} and scores["comparison_pool"]["min_per_class"] == min(pool.values())
    for c in (0, 1):
        outside_batch = int((mnist.labels == c).sum()) - 3  # the class's training images minus the batch
        assert 90 <= pool[str(c)] - outside_batch <= 110  # ... and the class's ~100 test images
    assert scores["identified"]["attack"]["share"] == 1.0  # an exact copy, in any slot, still passes
    assert scores["identified"]["blank"]["share"] == 0.0


def _audit_label_only_rate(reference_size: int, draws: int, seed: int) -> tuple[int, int]:
    """The audit's label-only guess (a random reference image of each restored label) on a node whose own
    16 images are of one class, against `reference_size` other images of the class, through the audit's
    matching and rule."""
    from fl_privacy.evaluation.node_scores import identified, label_only_guess, match_to_truth

    generator = torch.Generator().manual_seed(seed)
    hits = 0
    for draw in range(draws):
        own = torch.rand(BATCH, 1, 6, 6, generator=generator)
        reference = torch.rand(reference_size, 1, 6, 6, generator=generator)
        labels, reference_labels = torch.zeros(BATCH, dtype=torch.long), torch.zeros(reference_size,
                                                                                     dtype=torch.long)
        guess, exclude = label_only_guess(labels, reference, reference_labels, seed=draw)
        matched = match_to_truth(guess, own)
        hits += sum(identified(guess, own[matched], labels[matched], reference, reference_labels, exclude))
    return hits, draws * BATCH


def test_the_audit_scores_a_label_only_guess_by_the_same_rule_at_chance() -> None:
    from fl_privacy.evaluation.node_scores import pooled, score_against_node

    large_hits, n = _audit_label_only_rate(480, draws=100, seed=5)
    small_hits, small_n = _audit_label_only_rate(100, draws=100, seed=6)
    assert binomtest(large_hits, n).proportion_ci(method="wilson").high < 0.05, large_hits
    # the copied image is left out of its own comparison (else it would sit at distance 0: never identified)
    assert binomtest(small_hits, small_n).proportion_ci(method="wilson").low > 0.05, small_hits
    generator = torch.Generator().manual_seed(7)
    own = torch.rand(4, 1, 6, 6, generator=generator)
    reference = torch.rand(200, 1, 6, 6, generator=generator)
    own_labels, reference_labels = torch.tensor([0, 0, 1, 1]), torch.arange(200) % 2
    scores = score_against_node(own.flip(0), own_labels.flip(0), own, own_labels, reference, reference_labels)
    assert scores["identification"]["hits"] == 4 and scores["reference_per_class"] == {"0": 100, "1": 100}
    assert scores["baselines"]["label_only"]["identification"]["n"] == 4
    assert pooled([scores])["label_only_identification"]["n"] == 4
