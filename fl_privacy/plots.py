"""Figures of a run, drawn with matplotlib's file-only backend."""

from __future__ import annotations

from pathlib import Path

import matplotlib

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
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
