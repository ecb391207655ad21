"""Invert a run's final model's representations of unseen images, layer by layer, and score them.

`fl-privacy invert RUN_DIR [attack.representation_inversion.KEY=VALUE ...]` (or
`attack.representation_inversion.after_run=true` in a run): the lab picks `images` images from the `split`,
computes each layer's activation, hands only the activation to the attack
(fl_privacy/attacks/representation_inversion.py), then scores each reconstruction against the truth
(PSNR, SSIM) and by the oracle's confidence in the true label. Writes `representation_inversion/`:
`table.json`, `table.csv`, `grid.png` (truth row, then a reconstruction row per layer), `summary.json`.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from fl_privacy.attacks.representation_inversion import invert_representation, layer_extractor
from fl_privacy.config.schema import RepresentationInversionSettings, Settings
from fl_privacy.data.datasets import load_splits
from fl_privacy.data.images import ImageDataset, image_shape_of
from fl_privacy.evaluation.oracle import Oracle, load_or_train_oracle
from fl_privacy.evaluation.reconstruction import psnr, ssim
from fl_privacy.figures import plot_image_rows
from fl_privacy.lab.runtime.torch_threads import restores_torch_threads
from fl_privacy.models import build_model, model_outputs
from fl_privacy.results import load_tensors, staged_folder, write_csv, write_json
from fl_privacy.run_layout import (
    FINAL_MODEL,
    REPRESENTATION_DIR,
    REPRESENTATION_GRID,
    REPRESENTATION_SUMMARY,
    REPRESENTATION_TABLE,
    REPRESENTATION_TABLE_CSV,
)
from fl_privacy.seeding import Stream, derive_seed

log = logging.getLogger(__name__)



def score_layer(model: nn.Module, layer: str, truth: ImageDataset, settings: RepresentationInversionSettings,
                oracle: Oracle) -> tuple[dict, torch.Tensor]:
    """Invert `layer`'s activations of `truth.images` (the attack sees the activations only) and score."""
    with torch.no_grad():
        activation = layer_extractor(model, layer)(truth.images)["out"]
    started = time.perf_counter()
    result = invert_representation(model, layer, activation, image_shape_of(truth.images), settings)
    seconds = time.perf_counter() - started
    confidence = oracle.probabilities(result.images)[torch.arange(len(truth)), truth.labels]
    peak, structure = psnr(result.images, truth.images), ssim(result.images, truth.images)
    row = {"layer": layer, "dimensions": int(activation[0].numel()),
           "median_psnr": float(peak.median()), "mean_psnr": float(peak.mean()),
           "median_ssim": float(structure.median()), "mean_ssim": float(structure.mean()),
           "oracle_true_label_confidence": float(confidence.mean()),
           "feature_loss": float(result.feature_loss.mean()), "seconds": seconds}
    return row, result.images


@restores_torch_threads
def run_representation_inversion(run_dir: Path, settings: Settings) -> dict:
    """Invert the run's `final_model.pt` at every configured layer; write the table and the figure."""
    node, seed = settings.attack.representation_inversion, settings.seed
    torch.set_num_threads(node.torch_threads)
    splits = load_splits(settings.data, seed)
    pool = splits.test if node.split == "test" else splits.train
    chosen = np.random.default_rng(derive_seed(seed, Stream.REPRESENTATION_INVERSION)).permutation(len(pool))
    truth = pool.subset(chosen[:node.images])
    model = build_model(settings.model, splits.image_shape,
                        model_outputs(settings.client, splits.num_classes))
    model.load_state_dict(load_tensors(Path(run_dir) / FINAL_MODEL))
    model.eval()
    oracle = load_or_train_oracle(splits, settings.evaluation.oracle, seed)
    reference = oracle.probabilities(truth.images)[torch.arange(len(truth)), truth.labels]
    rows, rows_of_images = [], [truth.images]
    for layer in node.layers:
        row, images = score_layer(model, layer, truth, node, oracle)
        rows.append(row)
        rows_of_images.append(images)
        log.info("representation inversion %s (%d dims): median PSNR %.1f dB, SSIM %.3f, oracle %.3f, %.0f s",
                 layer, row["dimensions"], row["median_psnr"], row["median_ssim"],
                 row["oracle_true_label_confidence"], row["seconds"])
    summary = {"layers": rows, "oracle_true_label_confidence_of_truth": float(reference.mean()),
               "images": node.images, "split": node.split}
    with staged_folder(Path(run_dir) / REPRESENTATION_DIR) as out:
        write_json(out / REPRESENTATION_TABLE.name, rows)
        write_csv(out / REPRESENTATION_TABLE_CSV.name, rows)
        plot_image_rows(rows_of_images, ["truth", *node.layers], out / REPRESENTATION_GRID.name,
                        f"inversion from representations ({node.split} images)")
        write_json(out / REPRESENTATION_SUMMARY.name, summary)
    return summary
