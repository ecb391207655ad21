"""Evaluation of attacks against the ground truth, kept apart from the attacks themselves."""

from fl_privacy.evaluation.reconstruction import (
    ReconstructionScores,
    label_accuracy,
    label_count_accuracy,
    match_reconstructions,
    mse,
    psnr,
    save_comparison_grid,
    score_reconstruction,
    ssim,
)

__all__ = [
    "ReconstructionScores",
    "label_accuracy",
    "label_count_accuracy",
    "match_reconstructions",
    "mse",
    "psnr",
    "save_comparison_grid",
    "score_reconstruction",
    "ssim",
]
