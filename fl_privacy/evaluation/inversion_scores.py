"""Score gradient-inversion reconstructions against the ground truth: per capture (labels, and per image
MSE / PSNR / SSIM after optimal matching) and summarised over a run. The lab loads both and writes files."""

from __future__ import annotations

import statistics

from fl_privacy.data.images import ImageDataset
from fl_privacy.evaluation.reconstruction import label_accuracy, label_count_accuracy, score_reconstruction


def score_capture(reconstruction: dict, truth: ImageDataset, num_classes: int) -> dict:
    """Label (count) accuracy, and per-image MSE / PSNR / SSIM after optimal matching, for one capture."""
    labels, meta = reconstruction["labels"], reconstruction["metadata"]
    scores = {"round": meta["round"], "partition": meta["partition"],
              "attack": reconstruction["attack"], "seconds": reconstruction["seconds"],
              "matching_loss": reconstruction["loss"], "num_inputs": len(truth),
              "label_count_accuracy": label_count_accuracy(labels, truth.labels, num_classes),
              "true_labels": truth.labels.tolist(), "restored_labels": labels.tolist()}
    if reconstruction.get("iterations_run"):  # Adam attacks: the steps each restart took (early stops)
        scores["iterations_run"] = reconstruction["iterations_run"]
    if reconstruction.get("tv_weight") is not None:  # Inverting Gradients: the TV weight that won
        scores["tv_weight"] = reconstruction["tv_weight"]
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
