"""Figures of a run, drawn with matplotlib's file-only backend."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib
import numpy as np

if TYPE_CHECKING:
    import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


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
    """Save and close `figure`; no version in the PNG, so the same figure gives the same bytes."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, metadata={"Software": None})
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
