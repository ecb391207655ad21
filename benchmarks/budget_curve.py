"""Identified share vs attack budget on the captures a finished run saved: the run's captures (FedSGD
gradients, or FedAvg updates inverted by replay) are re-attacked by `invert_many` with the run's attack
settings at each budget in `--iterations` (the step-decay schedule scales with the budget, as in the paper)
and scored by the identification rule (MSE primary, SSIM beside; pool = every image of the data set outside
the batch; label-only baseline beside), pooled over the rounds and per round, with the restored labels'
exactness (each capture's label multiset equal to the truth's) and, with several TV weights
(`attack.gradient_inversion.tv_weight=[0.2,1e-4]`), how many captures each weight won.
One JSON line per budget.

    python benchmarks/budget_curve.py RUN_DIR [attack.KEY=VALUE ...] --iterations 200 1000 4000 \
        [--rounds 1 20]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from collections import Counter
from pathlib import Path

import torch

from fl_privacy.attacks.gradient_inversion import InvertingConfig
from fl_privacy.attacks.inverting_engine import invert_many
from fl_privacy.attacks.registry import attack_options
from fl_privacy.cli.commands import run_settings
from fl_privacy.data.datasets import load_splits
from fl_privacy.devices import torch_device
from fl_privacy.errors import ConfigError
from fl_privacy.evaluation.comparison_pool import comparison_pool, fingerprints, whole_data_set
from fl_privacy.evaluation.identification import IdentificationCell, score_batch, wilson_share
from fl_privacy.evaluation.reconstruction import psnr, score_reconstruction
from fl_privacy.lab.channels.side_channels import truth_indices
from fl_privacy.lab.pipelines.inversion_pipeline import chosen_engine, load_capture
from fl_privacy.models import build_model
from fl_privacy.run_layout import CAPTURES, RECONSTRUCTIONS


@dataclasses.dataclass
class CurvePoint:
    """One budget's outcomes of one round (or of all rounds pooled)."""

    cell: IdentificationCell = dataclasses.field(default_factory=IdentificationCell)
    psnrs: list[float] = dataclasses.field(default_factory=list)
    labels_exact: list[bool] = dataclasses.field(default_factory=list)
    tv_chosen: Counter[float] = dataclasses.field(default_factory=Counter)

    def summary(self) -> dict:
        """The point as printed: identified (MSE, SSIM), label-only, median PSNR, labels exact, and how
        many captures each TV weight won (by matching loss)."""
        scores = self.cell.summary()
        return {"identified_mse": scores["identified"]["attack"],
                "identified_ssim": scores["identified_by"]["attack"]["ssim"],
                "label_only_mse": scores["identified"]["label_only"],
                "median_psnr": statistics.median(self.psnrs),
                "labels_exact": wilson_share(sum(self.labels_exact), len(self.labels_exact)),
                "tv_chosen": {f"{weight:g}": count for weight, count in sorted(self.tv_chosen.items())}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--iterations", type=int, nargs="+", default=[200, 1000, 4000])
    parser.add_argument("--rounds", type=int, nargs="+", help="only these captured rounds (default: all)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("overrides", nargs="*", metavar="attack.KEY=VALUE",
                        help="instead of the run's attack settings (e.g. attack.gradient_inversion."
                        "tv_weight=1e-4, or .engine=auto: the loop on a CPU, the same images)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    try:
        settings = run_settings(args.run_dir, "attack", args.overrides)
    except ConfigError as error:
        parser.error(str(error))
    base = attack_options(settings.attack.gradient_inversion)
    if not isinstance(base, InvertingConfig):
        parser.error("attack.gradient_inversion.name: the run's attack must be `inverting`")
    splits = load_splits(settings.data, settings.seed)
    # the captures the run attacked (its reconstructions name them)
    paths = sorted((args.run_dir / RECONSTRUCTIONS).glob("round_*/partition_*.pt"))
    loaded = [load_capture(args.run_dir / CAPTURES / p.relative_to(args.run_dir / RECONSTRUCTIONS))
              for p in paths]
    loaded = [(view, meta) for view, meta in loaded if not args.rounds or meta["round"] in args.rounds]
    if not loaded:
        parser.error(f"--rounds: no captures of rounds {args.rounds} in {args.run_dir}")
    truths = [splits.train.subset(truth_indices(args.run_dir, meta)) for _, meta in loaded]
    everything = whole_data_set(splits)
    digests = fingerprints(everything.images)  # once: the pools differ only by the batch left out
    first = loaded[0][1]
    model = build_model(settings.model, first["input_shape"], first["num_classes"])
    batched = chosen_engine(settings) == "batched"  # the run's engine (auto: the loop on a CPU)
    device = torch_device(settings.device)  # where the batched engine runs
    for iterations in args.iterations:
        config = dataclasses.replace(base, iterations=iterations, log_every=0)
        started = time.perf_counter()
        results = invert_many(model, [view for view, _ in loaded], config, device, batched=batched)
        seconds = time.perf_counter() - started
        pooled, by_round = CurvePoint(), dict[int, CurvePoint]()
        for number, (result, truth, (_, meta)) in enumerate(zip(results, truths, loaded, strict=True)):
            assert result.images is not None and result.tv_weight is not None
            pool = comparison_pool(everything, truth, digests)  # one pool in memory at a time
            outcomes = score_batch(result.images, result.labels, truth, pool, seed=number)
            order = score_reconstruction(result.images, truth.images).order
            image_psnrs = psnr(result.images[order], truth.images).tolist()
            exact = Counter(result.labels.tolist()) == Counter(truth.labels.tolist())
            for point in (pooled, by_round.setdefault(meta["round"], CurvePoint())):
                point.cell.add(outcomes)
                point.psnrs += image_psnrs
                point.labels_exact.append(exact)
                point.tv_chosen[result.tv_weight] += 1
        print(json.dumps({"run": str(args.run_dir), "overrides": args.overrides,
                          "examples": loaded[0][0].num_inputs,
                          "update_mode": "fedsgd" if loaded[0][0].is_gradient else "fedavg",
                          "rounds": sorted(by_round), "captures": len(loaded), "iterations": iterations,
                          **pooled.summary(),
                          "by_round": {str(r): p.summary() for r, p in sorted(by_round.items())},
                          "seconds": round(seconds, 1)}), flush=True)


if __name__ == "__main__":
    main()
