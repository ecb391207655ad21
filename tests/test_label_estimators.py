"""The label-count estimators added for trained checkpoints (issue 16): exact where their assumptions hold."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from fl_privacy.attacks.label_restoration import (
    bias_corrected_counts,
    gradient_class_probabilities,
    prior_counts,
)


def head_gradient(weight, bias, features, labels):
    """The dense head's mean cross-entropy gradient for penultimate `features` (what a client shares)."""
    weight, bias = weight.clone().requires_grad_(True), bias.clone().requires_grad_(True)
    loss = F.cross_entropy(features @ weight.T + bias, labels)
    return torch.autograd.grad(loss, (weight, bias))


def test_class_wise_gradient_features_give_each_present_class_its_softmax_when_alone():
    torch.manual_seed(0)
    weight, bias = torch.randn(10, 32, dtype=torch.float64), torch.randn(10, dtype=torch.float64)
    features, labels = torch.rand(1, 32, dtype=torch.float64), torch.tensor([2])
    # one example: dW_c / db_c is exactly its features
    weight_grad, bias_grad = head_gradient(weight, bias, features, labels)
    uniform = torch.full((10, 10), 0.1, dtype=torch.float64)
    columns = gradient_class_probabilities(weight, bias, weight_grad, bias_grad, uniform)
    assert torch.allclose(columns[:, 2], F.softmax(features[0] @ weight.T + bias, dim=0))
    assert torch.equal(columns[:, 3], uniform[:, 3])  # absent classes keep the fallback
    # with the exact per-class softmax, the counting system returns the exact count
    assert prior_counts(columns, bias_grad, 1).tolist() == [0, 0, 1, 0, 0, 0, 0, 0, 0, 0]


def test_bias_corrected_counts_find_the_classes_and_split_by_impact():
    # a near-uniform softmax (an untrained model): every example of class c lowers db_c by about 1/B
    bias_grad = torch.full((10,), 0.1) - torch.tensor([0, 3, 0, 0, 1, 0, 0, 0, 0, 0]) / 4
    assert bias_corrected_counts(bias_grad, 4).tolist() == [0, 3, 0, 0, 1, 0, 0, 0, 0, 0]
    assert int(bias_corrected_counts(torch.randn(10), 8).sum()) == 8
