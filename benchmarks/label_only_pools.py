"""The label-only guess's identified share on the batches of finished runs under two comparison pools: the
test split alone (the rule before issue 27's fix) and every image of the data set outside the batch (now).
Each batch gets `--draws` independent guesses (a random pool image of each estimated label, left out of its
own comparison), through the same matching and rule (MSE); one JSON line per batch size.

    python benchmarks/label_only_pools.py --draws 20 runs/label_only/s*_e16_fedsgd
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from scipy.stats import binomtest

from fl_privacy.cli.commands import run_settings
from fl_privacy.data.datasets import load_splits
from fl_privacy.evaluation.comparison_pool import comparison_pool, fingerprints, whole_data_set
from fl_privacy.evaluation.identification import baseline_reconstructions, identify
from fl_privacy.lab.channels.side_channels import truth_indices
from fl_privacy.results import load_tensors
from fl_privacy.run_layout import RECONSTRUCTIONS, round_files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--draws", type=int, default=20, help="label-only guesses per batch")
    args = parser.parse_args()
    torch.set_num_threads(1)
    totals: dict[tuple[int, str], list[int]] = {}
    sizes: dict[tuple[int, str], list[int]] = {}
    for run in sorted(r for r in args.runs if r.is_dir()):
        settings = run_settings(run, "attack", [])
        splits = load_splits(settings.data, settings.seed)
        everything = whole_data_set(splits)
        digests = fingerprints(everything.images)  # once a run, not once a batch
        for number, path in enumerate(round_files(run, RECONSTRUCTIONS, ".pt")):
            record = load_tensors(path)
            truth = splits.train.subset(truth_indices(run, record["metadata"]))
            pools = {"test split": splits.test, "whole data set": comparison_pool(everything, truth, digests)}
            for name, pool in pools.items():
                key = (len(truth), name)
                sizes.setdefault(key, []).append(min(int((pool.labels == c).sum()) for c in truth.labels))
                rng = np.random.default_rng([settings.seed, number])
                for _ in range(args.draws):
                    images, exclude = baseline_reconstructions(record["labels"], pool, truth.images.shape[1:],
                                                               rng)["label_only"]
                    hits = identify(images, truth, pool, "mse", exclude, min_pool=1)
                    counts = totals.setdefault(key, [0, 0])
                    counts[0] += sum(hits)
                    counts[1] += len(hits)
    for (examples, name), (hits, n) in sorted(totals.items()):
        ci = binomtest(hits, n).proportion_ci(method="wilson")
        smallest = min(sizes[(examples, name)])
        print(json.dumps({"examples": examples, "pool": name, "pool_min_a_class": smallest,
                          "draws_per_batch": args.draws, "hits": hits, "n": n, "share": hits / n,
                          "wilson95": [float(ci.low), float(ci.high)],
                          "bound_batch_over_pool": examples / (smallest + 1)}))


if __name__ == "__main__":
    main()
