"""Score a run's reconstructions against the ground truth the clients recorded (the lab's side channel).

Reads `attack/reconstructions/` and `truth/` (indices into the training split, which is rebuilt from the
run's data config and seed), writes `attack/scores.json` (per capture, per image, and a summary) and
truth | reconstruction grids (`attack/grids/` per capture, `attack/grid.png` for the first images).
"""

from __future__ import annotations

import json
import logging
import shutil
import statistics
from pathlib import Path

import torch

from fl_privacy.data.datasets import ImageDataset, load_splits
from fl_privacy.evaluation.reconstruction import (
    label_accuracy,
    label_count_accuracy,
    save_comparison_grid,
    score_reconstruction,
)
from fl_privacy.results import RECONSTRUCTIONS, TRUTH, round_file, write_json

log = logging.getLogger(__name__)

GRID_IMAGES = 16


def score_capture(reconstruction: dict, truth: ImageDataset, num_classes: int) -> dict:
    """Label (count) accuracy, and per-image MSE / PSNR / SSIM after optimal matching, for one capture."""
    labels, meta = reconstruction["labels"], reconstruction["metadata"]
    scores = {"round": meta["round"], "partition": meta["partition"],
              "attack": reconstruction["attack"], "seconds": reconstruction["seconds"],
              "matching_loss": reconstruction["loss"], "num_inputs": len(truth),
              "label_count_accuracy": label_count_accuracy(labels, truth.labels, num_classes),
              "true_labels": truth.labels.tolist(), "restored_labels": labels.tolist()}
    scores["labels_exact"] = scores["label_count_accuracy"] == 1.0
    if reconstruction["images"] is not None:
        image_scores = score_reconstruction(reconstruction["images"], truth.images)
        scores["label_accuracy"] = label_accuracy(labels[image_scores.order], truth.labels)
        scores["images"] = {name: getattr(image_scores, name).tolist()
                            for name in ("mse", "mse_255", "psnr", "ssim")}
        scores["order"] = image_scores.order.tolist()
    return scores


def summarise(captures: list[dict]) -> dict:
    """Medians over all images, and label results over all captures."""
    summary = {"captures": len(captures), "images": sum(c["num_inputs"] for c in captures),
               "labels_exact_fraction": statistics.fmean(c["labels_exact"] for c in captures),
               "label_count_accuracy": statistics.fmean(c["label_count_accuracy"] for c in captures),
               "median_seconds_per_capture": statistics.median(c["seconds"] for c in captures)}
    with_images = [c for c in captures if "images" in c]
    if with_images:
        for name in ("mse", "mse_255", "psnr", "ssim"):
            summary[f"median_{name}"] = statistics.median(v for c in with_images for v in c["images"][name])
        hits = [c["label_accuracy"] * c["num_inputs"] for c in with_images]
        summary["label_accuracy"] = sum(hits) / sum(c["num_inputs"] for c in with_images)
    return summary


def truth_indices(run_dir: Path, meta: dict) -> list[int]:
    """The training-split indices a capture was computed on: one client's, or (a secure-aggregation
    capture) those of every client in the aggregate, in partition order."""
    indices = []
    for partition in meta.get("partitions", [meta["partition"]]):
        truth_file = round_file(run_dir, TRUTH, meta["round"], partition, ".json")
        indices += json.loads(truth_file.read_text())["indices"]
    return indices


def evaluate_run(run_dir: Path, data_cfg, seed: int) -> dict:
    """Score every reconstruction of `run_dir`; writes and returns `attack/scores.json`'s content."""
    run_dir = Path(run_dir)
    splits = load_splits(data_cfg, seed)
    shutil.rmtree(run_dir / "attack" / "grids", ignore_errors=True)  # a previous evaluation's grids
    captures, truth_images, reconstructed = [], [], []
    for path in sorted((run_dir / RECONSTRUCTIONS).glob("round_*/partition_*.pt")):
        reconstruction = torch.load(path, weights_only=True)
        meta = reconstruction["metadata"]
        truth = splits.train.subset(truth_indices(run_dir, meta))
        scores = score_capture(reconstruction, truth, splits.num_classes)
        captures.append(scores)
        if reconstruction["images"] is not None:
            aligned = reconstruction["images"][torch.tensor(scores["order"])]
            save_comparison_grid(truth.images, aligned, run_dir / "attack" / "grids" / f"{path.parent.name}_"
                                 f"{path.stem}.png")
            truth_images.append(truth.images)
            reconstructed.append(aligned)
    if not captures:
        raise FileNotFoundError(f"no reconstructions under {run_dir / RECONSTRUCTIONS}")
    if truth_images:
        save_comparison_grid(torch.cat(truth_images)[:GRID_IMAGES], torch.cat(reconstructed)[:GRID_IMAGES],
                             run_dir / "attack" / "grid.png")
    result = {"summary": summarise(captures), "captures": captures}
    write_json(run_dir / "attack" / "scores.json", result)
    log.info("attack scores: %s", result["summary"])
    return result
