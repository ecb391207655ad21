"""Two one-off probes behind docs/gradient_inversion.md §2 (why no estimator reaches 90% exact label counts
at a trained checkpoint), on the benchmark's batches of 8 from 3 classes:

- `temperature`: the class-wise gradient estimator with the logits scaled by α before the softmax;
- `instance`: fit each example's penultimate features (coefficients in the row space of the rank-B head
  gradient) and soft labels to the head's weight and bias gradients (L-BFGS, restarts), count the argmaxes.

    python benchmarks/label_probes.py --probe temperature --epochs 2 10 --batches 30 --seed 0
    python benchmarks/label_probes.py --probe instance --epochs 10 --batches 10 --seed 0
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from label_counts_trained import batches
from torch.nn import functional as F

from fl_privacy.attacks.label_restoration import class_probabilities, prior_counts
from fl_privacy.config import compose_settings
from fl_privacy.data.federation import build_federation
from fl_privacy.models import model_factory
from fl_privacy.training import TrainSettings, batch_gradient, train

ALPHAS = (0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)


def tempered_counts(head, weight_grad, bias_grad, prior, alpha: float, size: int) -> torch.Tensor:
    weight, bias = head
    columns = prior.clone()
    for c in torch.nonzero(bias_grad < 0).flatten().tolist():
        columns[:, c] = F.softmax(alpha * (weight @ (weight_grad[c] / bias_grad[c]) + bias), dim=0)
    return prior_counts(columns, bias_grad, size)


def _fit(coefficients: torch.Tensor, logits: torch.Tensor, projected: torch.Tensor, bias: torch.Tensor,
         left: torch.Tensor, bias_grad: torch.Tensor) -> float:
    """L-BFGS on the relative misfit of (softmax(W h_i + b) - y_i) to dW (in row-space coordinates) and db."""
    size = len(coefficients)
    optimizer = torch.optim.LBFGS([coefficients, logits], max_iter=300, history_size=50,
                                  line_search_fn="strong_wolfe", tolerance_grad=1e-12, tolerance_change=1e-14)

    def loss() -> torch.Tensor:
        residual = F.softmax(coefficients @ projected.T + bias, dim=1) - F.softmax(logits, dim=1)
        return (((residual.T @ coefficients / size - left) ** 2).sum() / (left ** 2).sum()
                + ((residual.sum(0) / size - bias_grad) ** 2).sum() / (bias_grad ** 2).sum())

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        value = loss()
        value.backward()
        return value

    optimizer.step(closure)
    return float(loss().detach())


def instance_counts(head, weight_grad, bias_grad, size: int, restarts: int = 4, seed: int = 0
                    ) -> tuple[torch.Tensor, float]:
    """Features h_i = V a_i in the rank-`size` row space of dW; fit A and soft labels Y so that
    (softmax(W h_i + b) - y_i) reproduces dW and db; the lowest-loss restart's argmax labels."""
    weight, bias = head
    columns, singular, rows = torch.linalg.svd(weight_grad, full_matrices=False)
    left, rows = columns[:, :size] * singular[:size], rows[:size]
    generator = torch.Generator().manual_seed(seed)
    start = rows @ (weight_grad.T @ bias_grad / bias_grad.dot(bias_grad))
    best: tuple[float, torch.Tensor] | None = None
    for _ in range(restarts):
        noise = torch.randn(size, size, generator=generator, dtype=torch.float64)
        coefficients = (start + 0.5 * start.norm() / size ** 0.5 * noise).requires_grad_(True)
        logits = torch.zeros(size, len(bias), dtype=torch.float64, requires_grad=True)
        final = _fit(coefficients, logits, weight @ rows.T, bias, left, bias_grad)
        if best is None or final < best[0]:
            best = (final, logits.detach().argmax(1))
    assert best is not None
    return torch.bincount(best[1], minlength=len(bias)), best[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--probe", choices=["temperature", "instance"], required=True)
    parser.add_argument("--epochs", type=int, nargs="+", default=[10])
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    settings = compose_settings(["+experiment=label_restoration"])
    federation = build_federation(settings.federation)
    num_classes = federation.splits.num_classes
    for epochs in args.epochs:
        model = model_factory(settings.model, federation.splits.image_shape, num_classes, args.seed)()
        train(model, federation.warmup, TrainSettings.of(settings.strategy.warmup.model_copy(
            update={"epochs": epochs})), seed=args.seed)
        head = (model.head.weight.detach().double(), model.head.bias.detach().double())
        prior = class_probabilities(model, federation.warmup, num_classes)
        hits: dict[str, int] = {}
        losses = []
        for data in batches(federation, args.batches, 8, 3, np.random.default_rng(args.seed)):
            gradient, _ = batch_gradient(model, data)
            weight_grad, bias_grad = gradient["head.weight"].double(), gradient["head.bias"].double()
            true = torch.bincount(data.labels, minlength=num_classes)
            if args.probe == "temperature":
                for alpha in ALPHAS:
                    counts = tempered_counts(head, weight_grad, bias_grad, prior, alpha, 8)
                    hits[f"alpha={alpha}"] = hits.get(f"alpha={alpha}", 0) + bool((counts == true).all())
            else:
                counts, loss = instance_counts(head, weight_grad, bias_grad, 8, seed=args.seed)
                hits["instance"] = hits.get("instance", 0) + bool((counts == true).all())
                losses.append(loss)
        print(json.dumps({"probe": args.probe, "warmup_epochs": epochs, "batches": args.batches,
                          "seed": args.seed, "exact": hits,
                          "median_matching_loss": float(np.median(losses)) if losses else None}), flush=True)


if __name__ == "__main__":
    main()
