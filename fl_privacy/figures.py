"""Plotting helpers, with matplotlib's file-only backend: a run's accuracy, image rows, ROC curves, AUC per
round, bands, frontiers and sweep curves. A leaf: the lab, the evaluation and the report all draw with it
(the report's plots over jobs are in `report/job_plots.py`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib
import numpy as np

from fl_privacy.results import COMPLETED, save_figure_file

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

if TYPE_CHECKING:
    import torch


def plot_accuracy(records: list[dict], path: Path, title: str = "") -> None:
    """Central test accuracy per round (round 0 = after warm-up) as a PNG."""
    rounds = [r["round"] for r in records if r["central"]]
    accuracy = [r["central"]["accuracy"] for r in records if r["central"]]
    figure, axis = plt.subplots(figsize=(5, 3.2), dpi=120)
    axis.plot(rounds, accuracy, marker=".", linewidth=1.2)
    axis.set_xlabel("round (0 = after warm-up)")
    axis.set_ylabel("central test accuracy")
    axis.set_title(title, fontsize=9)
    axis.grid(alpha=0.3)
    figure.tight_layout()
    save_figure(figure, path)


def save_figure(figure, path: Path) -> None:
    """Save (atomically) and close `figure`."""
    save_figure_file(Path(path), figure)
    plt.close(figure)


def plot_image_rows(rows: list[torch.Tensor], labels: list[str], path: Path, title: str = "") -> None:
    """One labelled row per image batch (N x C x H x W in [0, 1]), tiled with torchvision's make_grid."""
    from torchvision.utils import make_grid

    columns = max(len(row) for row in rows)
    figure, axes = plt.subplots(len(rows), 1, figsize=(0.7 * columns + 1.2, 0.75 * len(rows) + 0.5),
                                dpi=120, squeeze=False)
    for axis, row, label in zip(axes[:, 0], rows, labels, strict=True):
        grid = make_grid(row, nrow=columns, padding=1, pad_value=1.0)
        axis.imshow(grid.permute(1, 2, 0).clamp(0, 1).numpy(), interpolation="nearest")
        axis.set_xticks([])
        axis.set_yticks([])
        axis.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    save_figure(figure, path)


def plot_roc_curves(curves: dict[str, tuple], path: Path, min_fpr: float, title: str = "") -> None:
    """ROC curves (name -> (fpr, tpr)) on log-log axes, down to `min_fpr` (the smallest nonzero FPR)."""
    figure, axis = plt.subplots(figsize=(4.6, 4.2), dpi=120)
    for name, (fpr, tpr) in curves.items():
        axis.plot(np.maximum(fpr, min_fpr / 2), np.maximum(tpr, min_fpr / 2), linewidth=1.2, label=name)
    diagonal = np.logspace(np.log10(min_fpr / 2), 0, 50)
    axis.plot(diagonal, diagonal, "k:", linewidth=0.8, label="chance")
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlim(min_fpr / 2, 1)
    axis.set_ylim(min_fpr / 2, 1.05)
    axis.set_xlabel(f"false positive rate (resolution {min_fpr:.2g})")
    axis.set_ylabel("true positive rate")
    axis.set_title(title, fontsize=9)
    axis.legend(fontsize=7, loc="upper left")
    axis.grid(alpha=0.3, which="both")
    figure.tight_layout()
    save_figure(figure, path)


def _number(text) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def plot_frontier(rows: list[dict], metric: str, color: str | None, path: Path) -> bool:
    """Attack success (`metric`) against accuracy, one point per finished job, coloured by `color`
    (a number: colour scale; otherwise one colour per value); False when fewer than 2 points."""
    points = [row for row in rows if row["status"] == COMPLETED and _number(row.get(metric)) is not None
              and _number(row.get("accuracy")) is not None]
    if len(points) < 2:
        return False
    figure, axis = plt.subplots(figsize=(5.6, 4.0), dpi=110)
    x = [float(row["accuracy"]) for row in points]
    y = [float(row[metric]) for row in points]
    numbers = [_number(row.get(color)) for row in points] if color else []
    shades = [s for s in numbers if s is not None]
    if shades and len(shades) == len(numbers):  # every point has a number
        spread = min(shades) > 0 and max(shades) / min(shades) > 100  # e.g. ε over orders of magnitude
        drawn = axis.scatter(x, y, c=shades, cmap="viridis", s=46, edgecolors="black", linewidths=0.5,
                             norm=LogNorm() if spread else None)
        figure.colorbar(drawn, ax=axis, label=color)
    else:
        for value in dict.fromkeys(str(row.get(color, "")) for row in points):
            chosen = [i for i, row in enumerate(points) if str(row.get(color, "")) == value]
            axis.scatter([x[i] for i in chosen], [y[i] for i in chosen], s=46, edgecolors="black",
                         linewidths=0.5, label=f"{color}={value}" if color else None)
        if color:
            axis.legend(fontsize=7)
    for xi, yi, row in zip(x, y, points, strict=True):
        axis.annotate(row["job"], (xi, yi), fontsize=6, xytext=(3, 3), textcoords="offset points")
    axis.set_xlabel("final central test accuracy (utility)")
    axis.set_ylabel(f"{metric} (attack success)")
    axis.set_title("privacy-utility-attack frontier", fontsize=9)
    axis.grid(alpha=0.3)
    figure.tight_layout()
    save_figure(figure, path)
    return True


def plot_sweep_curve(rows: list[dict], key: str, metric: str, path: Path) -> bool:
    """Attack success (`metric`) and accuracy against a numeric swept `key` (e.g. the noise or the
    pruned share), the plot that answers "at which value does the attack collapse"; False when fewer
    than 2 finished jobs have numbers for both."""
    numbers = [(_number(row.get(key)), _number(row.get(metric)), _number(row.get("accuracy")))
               for row in rows if row["status"] == COMPLETED]
    # drop the jobs without both numbers before sorting (None does not compare with a number)
    points = sorted((value, score, accuracy) for value, score, accuracy in numbers
                    if value is not None and score is not None)
    if len(points) < 2:
        return False
    figure, axis = plt.subplots(figsize=(5.6, 3.8), dpi=110)
    values = [p[0] for p in points]
    axis.plot(values, [p[1] for p in points], marker="o", color="tab:red", label=metric)
    positive = [v for v in values if v > 0]
    if positive and max(positive) / min(positive) >= 100:  # values over decades, 0 included: symlog
        axis.set_xscale("symlog", linthresh=min(positive))
    axis.set_xlabel(key)
    axis.set_ylabel(metric, color="tab:red")
    accuracies = [p[2] for p in points if p[2] is not None]
    if len(accuracies) == len(points):
        twin = axis.twinx()
        twin.plot(values, accuracies, marker="s", linestyle="--", color="tab:blue")
        twin.set_ylabel("final central test accuracy", color="tab:blue")
    axis.set_title(f"{metric} vs {key}", fontsize=9)
    axis.grid(alpha=0.3)
    figure.tight_layout()
    save_figure(figure, path)
    return True


def plot_auc_per_round(rounds: list[int], series: dict[str, tuple[list, list, list]], baseline: float,
                       path: Path, title: str = "") -> None:
    """AUC per round with its CI band for each attack, the final-model audit's AUC and chance as lines."""
    figure, axis = plt.subplots(figsize=(5.5, 3.4), dpi=120)
    for name, (auc, low, high) in series.items():
        axis.plot(rounds, auc, marker=".", linewidth=1.2, label=name)
        axis.fill_between(rounds, low, high, alpha=0.2)
    axis.axhline(baseline, color="black", linestyle="--", linewidth=1, label="final global model, LOSS")
    axis.axhline(0.5, color="grey", linestyle=":", linewidth=1, label="chance")
    axis.set_xlabel("round")
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_ylabel("ROC AUC (95% bootstrap CI)")
    axis.set_title(title, fontsize=9)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7)
    figure.tight_layout()
    save_figure(figure, path)


def plot_bands(curves: dict[str, dict[str, tuple]], path: Path) -> None:
    """One panel per measure: per label, the mean per round with its band (label -> (rounds, mean, low,
    high); a NaN band, e.g. for one seed, is left out)."""
    figure, axes = plt.subplots(1, len(curves), figsize=(4.2 * len(curves), 3.4), dpi=110, squeeze=False)
    for axis, (measure, lines) in zip(axes[0], curves.items(), strict=True):
        for label, (rounds, mean, low, high) in lines.items():
            (line,) = axis.plot(rounds, mean, marker=".", linewidth=1.1, label=label)
            axis.fill_between(rounds, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
        axis.set_xlabel("round")
        axis.set_title(f"{measure}: mean, 95% band over seeds (report.statistics)", fontsize=8)
        axis.grid(alpha=0.3)
    axes[0][0].legend(fontsize=6, loc="best")
    figure.tight_layout()
    save_figure(figure, path)
