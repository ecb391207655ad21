"""Label counts at trained checkpoints, in-process: exact-count and multiset accuracy of the zero-shot counts
and of the class-prior counts (`prior_counts`, class softmax means on the server's warm-up images) after
0..N warm-up epochs of the seed CNN, for FedSGD batches drawn from 3 classes of the clients' pool. The
oracle row plugs the batch's true mean softmax into the same counting formula (an upper bound, uses the
truth; no attack does).

    python benchmarks/label_counts_trained.py --epochs 0 1 2 5 10 --batches 30 --seeds 0 1 2 \
        --plot docs/figures/label_counts_trained.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
from scipy.stats import binomtest

from fl_privacy.attacks.label_restoration import (
    bias_corrected_counts,
    class_probabilities,
    gradient_class_probabilities,
    label_counts,
    prior_counts,
    round_counts,
)
from fl_privacy.config import compose_settings
from fl_privacy.data.federation import build_federation
from fl_privacy.evaluation.reconstruction import label_count_accuracy
from fl_privacy.models import model_factory
from fl_privacy.training import TrainSettings, batch_gradient, evaluate, train

ESTIMATORS = ("zero_shot", "class_prior", "bias_corrected", "classwise_gradient", "classwise_gradient_prior",
              "oracle_mean_softmax")


def batches(federation, count: int, size: int, classes: int, rng: np.random.Generator):
    """`count` batches of `size` clients' images from `classes` random classes (each at least once)."""
    pool = np.concatenate(federation.client_indices)
    labels = federation.splits.train.labels[pool].numpy()
    for _ in range(count):
        chosen = rng.choice(federation.splits.num_classes, classes, replace=False)
        counts = rng.multinomial(size - classes, [1 / classes] * classes) + 1
        yield federation.splits.train.subset(np.concatenate(
            [rng.choice(pool[labels == c], k, replace=False) for c, k in zip(chosen, counts, strict=True)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, nargs="+", default=[0, 1, 2, 5, 10])
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--classes", type=int, default=3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--plot", type=Path, help="also draw the exact-count share per estimator to this PNG")
    args = parser.parse_args()
    rows = []
    torch.set_num_threads(1)
    settings = compose_settings(["+experiment=label_restoration"])
    federation = build_federation(settings.federation)
    num_classes, size = federation.splits.num_classes, args.batch_size
    for epochs in args.epochs:
        exact: dict[str, list[bool]] = {name: [] for name in ESTIMATORS}
        multiset: dict[str, list[float]] = {name: [] for name in exact}
        accuracies = []
        for seed in args.seeds:
            model = model_factory(settings.model, federation.splits.image_shape, num_classes, seed)()
            recipe = TrainSettings.of(settings.strategy.warmup.model_copy(update={"epochs": epochs}))
            if epochs:
                train(model, federation.warmup, recipe, seed=seed)
            accuracies.append(evaluate(model, federation.splits.test, num_classes).accuracy)
            probs = class_probabilities(model, federation.warmup, num_classes)
            for data in batches(federation, args.batches, size, args.classes, np.random.default_rng(seed)):
                gradient, _ = batch_gradient(model, data)
                weight_grad, bias_grad = gradient["head.weight"], gradient["head.bias"]
                with torch.no_grad():
                    mean_softmax = torch.softmax(model(data.images), dim=1).double().mean(dim=0)
                head = (model.head.weight.detach(), model.head.bias.detach())
                uniform = torch.full((num_classes, num_classes), 1.0 / num_classes)
                estimates = {
                    "zero_shot": label_counts([head], weight_grad, bias_grad, size),
                    "class_prior": prior_counts(probs, bias_grad, size),
                    "bias_corrected": bias_corrected_counts(bias_grad, size),
                    "classwise_gradient": prior_counts(gradient_class_probabilities(
                        *head, weight_grad, bias_grad, uniform), bias_grad, size),
                    "classwise_gradient_prior": prior_counts(gradient_class_probabilities(
                        *head, weight_grad, bias_grad, probs), bias_grad, size),
                    "oracle_mean_softmax": round_counts(size * (mean_softmax - bias_grad.double()), size)}
                true = torch.bincount(data.labels, minlength=num_classes)
                for name, counts in estimates.items():
                    exact[name].append(bool((counts == true).all()))
                    labels = torch.repeat_interleave(torch.arange(num_classes), counts)
                    multiset[name].append(label_count_accuracy(labels, data.labels, num_classes))
        for name in exact:
            hits, n = sum(exact[name]), len(exact[name])
            ci = binomtest(hits, n).proportion_ci(method="wilson")
            rows.append({"warmup_epochs": epochs, "test_accuracy": round(float(np.mean(accuracies)), 3),
                              "estimator": name, "batches": n, "seeds": args.seeds, "exact": hits,
                              "exact_share": round(hits / n, 3),
                              "wilson95": [round(ci.low, 3), round(ci.high, 3)],
                              "multiset_accuracy": round(float(np.mean(multiset[name])), 3)})
            print(json.dumps(rows[-1]), flush=True)
    if args.plot:
        plot_exact_shares(rows, args.plot)


def plot_exact_shares(rows: list[dict], out: Path) -> None:
    """Exact-count share (Wilson 95% bars) against warm-up epochs, one line per estimator."""
    figure, axes = plt.subplots(figsize=(7, 4))
    for name in ESTIMATORS:
        mine = [r for r in rows if r["estimator"] == name]
        x = [r["warmup_epochs"] for r in mine]
        y = np.array([r["exact_share"] for r in mine])
        bars = np.abs(np.array([r["wilson95"] for r in mine]).T - y)
        axes.errorbar(x, y, yerr=bars, capsize=3, marker="o", label=name.replace("_", " "),
                      linestyle="--" if name == "oracle_mean_softmax" else "-")
    epochs = sorted({r["warmup_epochs"] for r in rows})
    accuracy = {r["warmup_epochs"]: r["test_accuracy"] for r in rows}
    axes.set_xticks(epochs, [f"{e}\n({accuracy[e]:.2f})" for e in epochs])
    axes.axhline(0.9, color="grey", linewidth=0.8, linestyle=":")
    axes.set_xlabel("warm-up epochs (test accuracy)")
    axes.set_ylabel(f"exact label counts (n = {rows[0]['batches']} batches)")
    axes.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(out, dpi=120)


if __name__ == "__main__":
    main()
