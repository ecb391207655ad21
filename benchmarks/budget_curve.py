"""Identified share vs attack budget on the captures a finished run saved: the run's FedSGD captures are
re-attacked by the batched Inverting Gradients engine with the run's attack settings at each budget in
`--iterations` (the step-decay schedule scales with the budget, as in the paper) and scored by the
identification rule (MSE primary, SSIM beside; pool = every image of the data set outside the batch;
label-only baseline beside).
One JSON line per budget.

    python benchmarks/budget_curve.py RUN_DIR --iterations 200 1000 4000
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from pathlib import Path

import torch

from fl_privacy.attacks.gradient_inversion import InvertingConfig
from fl_privacy.attacks.inverting_engine import invert_many
from fl_privacy.attacks.registry import attack_options
from fl_privacy.cli.commands import run_settings
from fl_privacy.data.datasets import load_splits
from fl_privacy.evaluation.comparison_pool import comparison_pool, whole_data_set
from fl_privacy.evaluation.identification import IdentificationCell, score_batch
from fl_privacy.evaluation.reconstruction import psnr, score_reconstruction
from fl_privacy.lab.channels.side_channels import truth_indices
from fl_privacy.lab.pipelines.inversion_pipeline import load_capture
from fl_privacy.models import build_model
from fl_privacy.run_layout import CAPTURES, RECONSTRUCTIONS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--iterations", type=int, nargs="+", default=[200, 1000, 4000])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    settings = run_settings(args.run_dir, "attack", [])
    base = attack_options(settings.attack.gradient_inversion)
    assert isinstance(base, InvertingConfig), "the run's attack must be name=inverting"
    splits = load_splits(settings.data, settings.seed)
    # the captures the run attacked (its reconstructions name them)
    paths = sorted((args.run_dir / RECONSTRUCTIONS).glob("round_*/partition_*.pt"))
    loaded = [load_capture(args.run_dir / CAPTURES / p.relative_to(args.run_dir / RECONSTRUCTIONS))
              for p in paths]
    truths = [splits.train.subset(truth_indices(args.run_dir, meta)) for _, meta in loaded]
    everything = whole_data_set(splits)
    meta = loaded[0][1]
    model = build_model(settings.model, meta["input_shape"], meta["num_classes"])
    for iterations in args.iterations:
        config = dataclasses.replace(base, iterations=iterations)
        started = time.perf_counter()
        results = invert_many(model, [view for view, _ in loaded], config)
        seconds = time.perf_counter() - started
        cell, psnrs = IdentificationCell(), []
        for number, (result, truth) in enumerate(zip(results, truths, strict=True)):
            assert result.images is not None
            pool = comparison_pool(everything, truth)  # one pool in memory at a time
            cell.add(score_batch(result.images, result.labels, truth, pool, seed=number))
            order = score_reconstruction(result.images, truth.images).order
            psnrs += psnr(result.images[order], truth.images).tolist()
        summary = cell.summary()
        print(json.dumps({"run": str(args.run_dir), "examples": loaded[0][0].num_inputs,
                          "round": meta["round"], "captures": len(loaded), "iterations": iterations,
                          "identified_mse": summary["identified"]["attack"],
                          "identified_ssim": summary["identified_by"]["attack"]["ssim"],
                          "label_only_mse": summary["identified"]["label_only"],
                          "median_psnr": statistics.median(psnrs), "seconds": round(seconds, 1)}),
              flush=True)


if __name__ == "__main__":
    main()
