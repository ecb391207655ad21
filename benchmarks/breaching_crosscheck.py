"""Cross-check the project's Inverting Gradients against breaching's on the captures a lab run saved.

Reads a finished `realism`-style run (FedSGD gradient captures and the project's reconstructions, scored in
`attack/scores.json`), runs breaching's IG (benchmarks/breaching_ig.py: its `invertinggradients` config, the
same iteration budget as the run's attack, its own bias-corrected labels) on the same captures, and scores
both through the same identification rule (fl_privacy.evaluation.identification, pool = the test split).
Prints one JSON line: each side's identified share (MSE primary, SSIM beside) with Wilson 95% intervals,
median PSNR, label accuracy, and whether the two shares lie within each other's intervals. Run it with the
scratch environment's python (breaching is not a project dependency):

    /tmp/breach/bin/python benchmarks/breaching_crosscheck.py RUN_DIR [--iterations N] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from fl_privacy.cli.commands import run_settings
from fl_privacy.data.datasets import load_splits
from fl_privacy.evaluation.identification import IdentificationCell, score_batch
from fl_privacy.evaluation.reconstruction import label_count_accuracy, psnr, score_reconstruction
from fl_privacy.lab.channels.side_channels import truth_indices
from fl_privacy.lab.pipelines.inversion_pipeline import load_capture
from fl_privacy.models import build_model
from fl_privacy.results import load_tensors
from fl_privacy.run_layout import CAPTURES, RECONSTRUCTIONS

sys.path.insert(0, str(Path(__file__).parent))
import breaching_ig  # noqa: E402  (the benchmark's own adapter, next to this file)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--iterations", type=int, default=None, help="default: the run's attack budget")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if not breaching_ig.available():
        raise SystemExit("breaching is not importable here; see benchmarks/breaching_ig.py")
    torch.set_num_threads(args.threads)
    settings = run_settings(args.run_dir, "attack", [])
    attack = settings.attack.gradient_inversion
    iterations = args.iterations or attack.iterations
    splits = load_splits(settings.data, settings.seed)
    sides = {"project": IdentificationCell(), "breaching": IdentificationCell()}
    psnrs: dict[str, list[float]] = {"project": [], "breaching": []}
    labels_right = {"project": 0, "breaching": 0}
    images, captures, seconds = 0, 0, 0.0
    for number, path in enumerate(sorted((args.run_dir / RECONSTRUCTIONS).glob("round_*/partition_*.pt"))):
        ours = load_tensors(path)
        view, meta = load_capture(args.run_dir / CAPTURES / path.relative_to(args.run_dir / RECONSTRUCTIONS))
        truth = splits.train.subset(truth_indices(args.run_dir, meta))
        model = build_model(settings.model, meta["input_shape"], meta["num_classes"])
        names = [name for name, _ in model.named_parameters()]
        started = time.perf_counter()
        theirs, their_labels = breaching_ig.breaching_ig(
            model, view.global_state, view.effective_gradient(names), view.num_inputs,
            tuple(meta["input_shape"]), iterations, seed=attack.seed)
        seconds += time.perf_counter() - started
        images += len(truth)
        captures += 1
        for side, (reconstruction, labels) in {"project": (ours["images"], ours["labels"]),
                                               "breaching": (theirs, their_labels)}.items():
            outcome = score_batch(reconstruction, labels, truth, splits.test, seed=number)
            sides[side].add({"attack": outcome["attack"]})
            if side == "project":
                sides[side].add({k: v for k, v in outcome.items() if k != "attack"})
            order = score_reconstruction(reconstruction, truth.images).order
            psnrs[side] += psnr(reconstruction[order], truth.images).tolist()
            labels_right[side] += round(label_count_accuracy(labels, truth.labels, splits.num_classes)
                                        * len(truth))
    summary = {side: cell.summary() for side, cell in sides.items()}
    project, reference = (summary[s]["identified"]["attack"] for s in ("project", "breaching"))
    result = {"run": str(args.run_dir), "iterations": iterations, "captures": captures,
              "images": images, "breaching_seconds": round(seconds, 1),
              "identified_mse": {"project": project, "breaching": reference},
              "identified_ssim": {s: summary[s]["identified_by"]["attack"]["ssim"] for s in sides},
              "baselines_mse": {k: v for k, v in summary["project"]["identified"].items() if k != "attack"},
              "median_psnr": {s: statistics.median(v) for s, v in psnrs.items()},
              "label_multiset_accuracy": {s: n / images for s, n in labels_right.items()},
              "within_each_others_interval": bool(
                  reference["low"] <= project["share"] <= reference["high"]
                  and project["low"] <= reference["share"] <= project["high"])}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
