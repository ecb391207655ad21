"""Analytic label restoration from the last layer's gradient (softmax cross-entropy, mean over the batch).

For logits z = W h + b, the mean cross-entropy gradient over a batch of B examples is
`db_c = (1/B) sum_i (p_ic - y_ic)` and `dW_c = (1/B) sum_i (p_ic - y_ic) h_i`. Only the true classes can
make `db_c` negative (iDLG), and `count_c = B (mean_i p_ic - db_c)` exactly, so counting labels reduces to
estimating the batch's mean softmax output, which the weight gradient reveals (see `label_counts`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from scipy.optimize import nnls
from torch import nn
from torch.nn import functional as F

from fl_privacy.attacks.views import CapturedUpdate
from fl_privacy.data.images import ImageDataset

LabelEstimator = Literal["counts", "bias_corrected"]
TOTAL_WEIGHT = 100.0  # weight of the `sum of counts = batch size` equation in `prior_counts`


def last_linear_names(model: nn.Module) -> tuple[str, str | None]:
    """Parameter names of the weight and bias (None if absent) of the model's last `nn.Linear`."""
    linear = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    if not linear:
        raise ValueError(f"{type(model).__name__} has no nn.Linear: label restoration needs a dense head.")
    prefix = f"{linear[-1]}." if linear[-1] else ""
    module = model.get_submodule(linear[-1])
    return f"{prefix}weight", (f"{prefix}bias" if module.bias is not None else None)


def class_scores(weight_grad: torch.Tensor, bias_grad: torch.Tensor | None = None) -> torch.Tensor:
    """Per-class evidence, negative for labels present in the batch: the bias gradient, else weight-row sums.

    Row sums are only reliable when the penultimate activations are non-negative (ReLU, sigmoid).
    """
    return bias_grad if bias_grad is not None else weight_grad.sum(dim=1)


def idlg_label(weight_grad: torch.Tensor, bias_grad: torch.Tensor | None = None) -> int:
    """iDLG (Zhao et al. 2020): for one example the true class is the only one with a negative score."""
    return int(class_scores(weight_grad, bias_grad).argmin())


def label_set(weight_grad: torch.Tensor, bias_grad: torch.Tensor | None = None) -> torch.Tensor:
    """Classes that certainly occur in the batch (negative score), sorted; duplicates are not counted."""
    return torch.nonzero(class_scores(weight_grad, bias_grad) < 0).flatten()


def mean_probabilities(weight: torch.Tensor, bias: torch.Tensor, weight_grad: torch.Tensor,
                       bias_grad: torch.Tensor) -> torch.Tensor:
    """Estimate the batch's mean softmax output from the last layer alone.

    `dW ~= db h_bar^T` when the penultimate features vary little across the batch (true for untrained
    nets), so the least-squares `h_bar = dW^T db / |db|^2` is a mean feature and `softmax(W h_bar + b)`
    approximates the mean probability. Exact for a single example.
    """
    mean_feature = weight_grad.T @ bias_grad / bias_grad.dot(bias_grad).clamp_min(1e-30)
    return F.softmax(weight @ mean_feature + bias, dim=0)


def round_counts(raw: torch.Tensor, total: int) -> torch.Tensor:
    """Non-negative integer counts summing to `total`, closest to `raw` (largest-remainder rounding)."""
    raw = torch.nan_to_num(raw.double(), nan=0.0, posinf=float(total)).clamp_min(0)
    counts = raw.floor().long()
    remainder = raw - counts
    while int(counts.sum()) != total:
        if int(counts.sum()) < total:
            index = int(remainder.argmax())
            counts[index] += 1
            remainder[index] -= 1
        else:
            index = int(torch.where(counts > 0, remainder, torch.full_like(remainder, torch.inf)).argmin())
            counts[index] -= 1
            remainder[index] += 1
    return counts


def label_counts(heads: Sequence[tuple[torch.Tensor, torch.Tensor]], weight_grad: torch.Tensor,
                 bias_grad: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Zero-shot label counts (C,) for a batch of `batch_size` with duplicates: `B (p_bar - db)`, rounded.

    `heads` are the last layer's (weight, bias) at each local step the gradient averages over: one pair for
    a shared gradient; for a FedAvg update the mean probability is averaged along the trajectory.
    """
    p_bar = torch.stack([mean_probabilities(weight.double(), bias.double(), weight_grad.double(),
                                            bias_grad.double()) for weight, bias in heads]).mean(dim=0)
    return round_counts(batch_size * (p_bar - bias_grad.double()), batch_size)


def counts_to_labels(counts: torch.Tensor) -> torch.Tensor:
    """The sorted multiset of labels with the given per-class counts."""
    return torch.repeat_interleave(torch.arange(len(counts)), counts.long())


def head_trajectory(payload: CapturedUpdate, names: tuple[str, str]
                    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The last layer at each local step: the sent one, or for FedAvg the straight line to the returned one.

    The server sees only the start and end of the client's local SGD; step t of E is taken at `t / E`.
    """
    weight, bias = (payload.global_state[n] for n in names)
    if payload.updated_state is None:
        return [(weight, bias)]
    assert payload.local_steps is not None  # a FedAvg capture, see CapturedUpdate
    steps = int(payload.local_steps)
    end_weight, end_bias = (payload.updated_state[n] for n in names)
    return [(weight + (t / steps) * (end_weight - weight), bias + (t / steps) * (end_bias - bias))
            for t in range(steps)]


def restore_labels(model: nn.Module, payload: CapturedUpdate, estimator: LabelEstimator = "counts"
                   ) -> torch.Tensor:
    """Labels of the `payload.num_inputs` examples behind a captured update (sorted; order is unknowable).

    One example: iDLG. Several: `label_counts` on the (effective) last-layer gradient, or with
    `estimator="bias_corrected"` breaching's bias-corrected counts (`bias_corrected_counts`).
    """
    weight_name, bias_name = last_linear_names(model)
    if bias_name is None:
        raise ValueError("restore_labels needs a last layer with a bias; use label_set on weight-row sums.")
    weight_grad, bias_grad = payload.effective_gradient([weight_name, bias_name])
    if payload.num_inputs == 1:
        return torch.tensor([idlg_label(weight_grad, bias_grad)])
    if estimator == "bias_corrected":
        return counts_to_labels(bias_corrected_counts(bias_grad, payload.num_inputs))
    counts = label_counts(head_trajectory(payload, (weight_name, bias_name)), weight_grad, bias_grad,
                          payload.num_inputs)
    return counts_to_labels(counts)


def class_probabilities(model: nn.Module, public: ImageDataset, num_classes: int) -> torch.Tensor:
    """(C, C): column k is the model's mean softmax output on the `public` images of class k (the uniform
    distribution for a class `public` lacks). The server computes it on images it holds itself."""
    model.eval()
    with torch.no_grad():
        probabilities = F.softmax(model(public.images), dim=1).double()
    columns = [probabilities[public.labels == k].mean(dim=0) if bool((public.labels == k).any())
               else torch.full((num_classes,), 1.0 / num_classes, dtype=torch.float64)
               for k in range(num_classes)]
    return torch.stack(columns, dim=1)


def prior_counts(class_probs: torch.Tensor, bias_grad: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Label counts (C,) from the bias gradient when each example of class k is assumed to output the
    class's mean softmax `class_probs[:, k]` (Wainakh et al.'s LLG+ idea of estimating the softmax term from
    data the attacker holds, here per class, so that trained, confident models are modelled too).

    `B db = sum_k n_k (p_k - e_k)`, so `n >= 0` solves `(I - P) n = -B db` with `sum n = B` (a heavily
    weighted extra row) by non-negative least squares (scipy), then is rounded to integers summing to B.
    """
    num_classes = len(bias_grad)
    system = np.vstack([np.eye(num_classes) - class_probs.double().numpy(),
                        TOTAL_WEIGHT * np.ones((1, num_classes))])
    target = np.concatenate([-batch_size * bias_grad.double().numpy(), [TOTAL_WEIGHT * batch_size]])
    solution, _ = nnls(system, target)
    return round_counts(torch.from_numpy(solution), batch_size)


def gradient_class_probabilities(weight: torch.Tensor, bias: torch.Tensor, weight_grad: torch.Tensor,
                                 bias_grad: torch.Tensor, fallback: torch.Tensor) -> torch.Tensor:
    """(C, C): column c estimates the softmax output of the batch's class-c examples from the gradient
    alone, for every class with a negative bias gradient (certainly present); other columns from `fallback`.

    Row c of the weight gradient over the bias gradient, `dW_c / db_c = sum_i (p_ic - y_ic) h_i /
    sum_i (p_ic - y_ic)`, is a weighted mean of the penultimate features in which the batch's class-c examples
    dominate (weights `1 - p_ic` against `p_ic` for the others); its softmax stands for their output. This
    is the class-wise embedding step of iLRG (Ma et al. 2023) for a single dense head; the instance-wise
    step (each example's features from the rank-B weight gradient) needs two dense layers, which the seed
    CNN lacks.
    """
    columns = fallback.double().clone()
    weight, bias = weight.double(), bias.double()
    for c in torch.nonzero(bias_grad < 0).flatten().tolist():
        feature = weight_grad[c].double() / bias_grad[c].double()
        columns[:, c] = F.softmax(weight @ feature + bias, dim=0)
    return columns


def bias_corrected_counts(bias_grad: torch.Tensor, batch_size: int) -> torch.Tensor:
    """`breaching`'s "bias-corrected" label strategy (after Wainakh et al.'s LLG): every class with a negative
    bias gradient gets one example; the mean negative gradient per example, `m = sum_{db<0} db / B`, is the
    impact of one example, and the remaining examples go one at a time to the class with the lowest
    (impact-corrected) gradient."""
    scores = bias_grad.double().clone()
    present = torch.nonzero(scores < 0).flatten()
    counts = torch.zeros(len(scores), dtype=torch.long)
    impact = scores[present].sum() / batch_size
    counts[present] = 1
    scores[present] -= impact
    for _ in range(batch_size - len(present)):
        chosen = int(scores.argmin())
        counts[chosen] += 1
        scores[chosen] -= impact
    return counts
