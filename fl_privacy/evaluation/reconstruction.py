"""Score image and label reconstructions against the ground truth, and draw truth | reconstruction grids."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from skimage.metrics import structural_similarity

from fl_privacy.results import save_image_grid


def _pair(reconstruction: torch.Tensor, truth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if reconstruction.shape != truth.shape:
        raise ValueError(f"reconstruction {tuple(reconstruction.shape)} and truth {tuple(truth.shape)} "
                         "must have the same N x C x H x W shape (match them first).")
    return reconstruction.detach().double().cpu(), truth.detach().double().cpu()


def mse(reconstruction: torch.Tensor, truth: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Per-image mean squared error of images in [0, 1], measured on [0, `scale`] (255 for 8-bit)."""
    rec, true = _pair(reconstruction, truth)
    return ((scale * (rec - true)) ** 2).flatten(1).mean(dim=1)


def psnr(reconstruction: torch.Tensor, truth: torch.Tensor, max_db: float = 100.0) -> torch.Tensor:
    """Per-image PSNR in dB for images in [0, 1], capped at `max_db` (identical images would be infinite)."""
    error = mse(reconstruction, truth).clamp_min(10 ** (-max_db / 10))
    return -10 * torch.log10(error)


def ssim(reconstruction: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Per-image structural similarity (scikit-image) for images in [0, 1]."""
    rec, true = _pair(reconstruction, truth)
    return torch.tensor([
        structural_similarity(r.numpy(), t.numpy(), data_range=1.0, channel_axis=0)
        for r, t in zip(rec, true, strict=True)
    ], dtype=torch.float64)


def match_reconstructions(reconstruction: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Order that aligns reconstructions to the truth: `reconstruction[order][j]` best matches `truth[j]`.

    Optimal one-to-one assignment on pairwise MSE (a batch attack does not know which slot is whose).
    """
    rec = reconstruction.detach().double().flatten(1).cpu()
    true = truth.detach().double().flatten(1).cpu()
    cost = torch.cdist(true, rec) ** 2 / true.shape[1]
    truth_rows, reconstruction_cols = linear_sum_assignment(cost.numpy())
    return torch.as_tensor(reconstruction_cols[np.argsort(truth_rows)], dtype=torch.long)


def label_accuracy(predicted: torch.Tensor, truth: torch.Tensor) -> float:
    """Fraction of positions whose label is right (labels already aligned to the truth)."""
    return float((predicted.cpu() == truth.cpu()).double().mean())


def label_count_accuracy(predicted: torch.Tensor, truth: torch.Tensor, num_classes: int) -> float:
    """Share of the label multiset recovered, `sum_c min(n_hat_c, n_c) / N`; 1.0 means exact counts."""
    predicted_counts = torch.bincount(predicted.cpu().long(), minlength=num_classes)
    true_counts = torch.bincount(truth.cpu().long(), minlength=num_classes)
    return float(torch.minimum(predicted_counts, true_counts).sum()) / max(len(truth), 1)


@dataclass(frozen=True)
class ReconstructionScores:
    """Per-image scores in truth order, and `order` that aligned the reconstructions to the truth."""

    mse: torch.Tensor
    mse_255: torch.Tensor
    psnr: torch.Tensor
    ssim: torch.Tensor
    order: torch.Tensor

    def summary(self) -> dict[str, float]:
        """Medians and means of every score, ready for metrics.jsonl."""
        scores = {"mse": self.mse, "mse_255": self.mse_255, "psnr": self.psnr, "ssim": self.ssim}
        return {f"{stat}_{name}": float(getattr(values, stat)()) for name, values in scores.items()
                for stat in ("median", "mean")}


def score_reconstruction(reconstruction: torch.Tensor, truth: torch.Tensor,
                         match: bool = True) -> ReconstructionScores:
    """All image scores, after aligning reconstructions to the truth by optimal assignment if `match`."""
    order = match_reconstructions(reconstruction, truth) if match else torch.arange(len(truth))
    aligned = reconstruction[order]
    return ReconstructionScores(mse(aligned, truth), mse(aligned, truth, scale=255.0), psnr(aligned, truth),
                                ssim(aligned, truth), order)


def save_comparison_grid(truth: torch.Tensor, reconstruction: torch.Tensor, path: str | Path,
                         pairs_per_row: int = 8) -> Path:
    """Write a PNG of (truth | reconstruction) pairs side by side, atomically."""
    _pair(reconstruction, truth)
    pairs = torch.stack([truth.detach().cpu(), reconstruction.detach().cpu()], dim=1).flatten(0, 1)
    save_image_grid(Path(path), pairs.float().clamp(0, 1), nrow=2 * min(pairs_per_row, len(truth)),
                    pad_value=1.0)
    return Path(path)
