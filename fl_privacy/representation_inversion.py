"""Invert a run's final model's representations of unseen images, layer by layer, and score them.

`python -m fl_privacy.representation_inversion RUN_DIR [KEY=VALUE ...]` (or
`representation_inversion.after_run=true` in a run): the lab picks `images` images from the
`split`, computes each layer's activation, hands only the activation to the attack
(fl_privacy/attacks/representation_inversion.py), then scores each reconstruction against the truth
(PSNR, SSIM) and by the oracle's confidence in the true label. Writes `representation_inversion/`:
`table.json`, `table.csv`, `grid.png` (truth row, then a reconstruction row per layer).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from fl_privacy.attacks.representation_inversion import (
    InversionSettings,
    invert_representation,
    layer_extractor,
)
from fl_privacy.data.datasets import ImageDataset, load_splits
from fl_privacy.evaluation.oracle import Oracle, OracleSettings, load_or_train_oracle
from fl_privacy.evaluation.reconstruction import psnr, ssim
from fl_privacy.models import build_model
from fl_privacy.plots import plot_image_rows
from fl_privacy.results import write_csv, write_json
from fl_privacy.seeding import REPRESENTATION_INVERSION, derive_seed

log = logging.getLogger(__name__)

OUTPUT = "representation_inversion"


def settings_from_cfg(node: DictConfig) -> InversionSettings:
    return InversionSettings(iterations=int(node.iterations), lr=float(node.lr),
                             optimizer=str(node.optimizer), tv_weight=float(node.tv_weight),
                             l2_weight=float(node.l2_weight), seed=int(node.seed))


def score_layer(model: nn.Module, layer: str, truth: ImageDataset, settings: InversionSettings,
                oracle: Oracle) -> tuple[dict, torch.Tensor]:
    """Invert `layer`'s activations of `truth.images` (the attack sees the activations only) and score."""
    with torch.no_grad():
        activation = layer_extractor(model, layer)(truth.images)["out"]
    started = time.perf_counter()
    result = invert_representation(model, layer, activation, tuple(truth.images.shape[1:]), settings)
    seconds = time.perf_counter() - started
    confidence = oracle.probabilities(result.images)[torch.arange(len(truth)), truth.labels]
    peak, structure = psnr(result.images, truth.images), ssim(result.images, truth.images)
    row = {"layer": layer, "dimensions": int(activation[0].numel()),
           "median_psnr": float(peak.median()), "mean_psnr": float(peak.mean()),
           "median_ssim": float(structure.median()), "mean_ssim": float(structure.mean()),
           "oracle_true_label_confidence": float(confidence.mean()),
           "feature_loss": float(result.feature_loss.mean()), "seconds": seconds}
    return row, result.images


def run_representation_inversion(run_dir: Path, cfg: DictConfig) -> dict:
    """Invert the run's `final_model.pt` at every configured layer; write the table and the figure."""
    node, seed = cfg.representation_inversion, int(cfg.seed)
    torch.set_num_threads(int(node.torch_threads))
    splits = load_splits(cfg.data, seed)
    pool = splits.test if node.split == "test" else splits.train
    chosen = np.random.default_rng(derive_seed(seed, REPRESENTATION_INVERSION)).permutation(len(pool))
    truth = pool.subset(chosen[:int(node.images)])
    model = build_model(cfg.model, splits.image_shape, splits.num_classes)
    model.load_state_dict(torch.load(Path(run_dir) / "final_model.pt", weights_only=True))
    model.eval()
    oracle = load_or_train_oracle(splits, OracleSettings.from_cfg(cfg.oracle), seed)
    reference = oracle.probabilities(truth.images)[torch.arange(len(truth)), truth.labels]
    settings = settings_from_cfg(node)
    rows, rows_of_images = [], [truth.images]
    for layer in node.layers:
        row, images = score_layer(model, str(layer), truth, settings, oracle)
        rows.append(row)
        rows_of_images.append(images)
        log.info("representation inversion %s (%d dims): median PSNR %.1f dB, SSIM %.3f, oracle %.3f, %.0f s",
                 layer, row["dimensions"], row["median_psnr"], row["median_ssim"],
                 row["oracle_true_label_confidence"], row["seconds"])
    out = Path(run_dir) / OUTPUT
    write_json(out / "table.json", rows)
    write_csv(out / "table.csv", rows)
    plot_image_rows(rows_of_images, ["truth", *map(str, node.layers)], out / "grid.png",
                    f"inversion from representations ({node.split} images)")
    summary = {"layers": rows, "oracle_true_label_confidence_of_truth": float(reference.mean()),
               "images": int(node.images), "split": str(node.split)}
    write_json(out / "summary.json", summary)
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fl_privacy.representation_inversion",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a finished run directory (with final_model.pt)")
    parser.add_argument("overrides", nargs="*", help="representation_inversion.KEY=VALUE")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(name)s][%(levelname)s] - %(message)s")
    from fl_privacy.config import check_representation_inversion
    from fl_privacy.errors import ConfigError

    default = OmegaConf.load(Path(__file__).resolve().parents[1] / "conf" / OUTPUT / "default.yaml")
    try:
        cfg = OmegaConf.create(json.loads((args.run_dir / "summary.json").read_text())["config"])
        node = OmegaConf.merge(default, cfg.get(OUTPUT) or {}, OmegaConf.from_dotlist(
            [override.removeprefix(f"{OUTPUT}.") for override in args.overrides]))
        cfg[OUTPUT] = node
        check_representation_inversion(cfg)
    except (ConfigError, FileNotFoundError) as error:
        log.error("%s", error)
        return 2
    log.info("%s", json.dumps(run_representation_inversion(args.run_dir, cfg)["layers"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
