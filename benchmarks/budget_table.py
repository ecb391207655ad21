"""The budget curves and the full-strength realism table from `budget_curve.py`'s JSON lines: one row per
(examples, update mode, captured round, iterations), pooled over the runs (seeds) that measured it: the
identified share per run and pooled with its Wilson 95% interval (MSE, the primary distance), SSIM's pooled
share, the label-only guess through the same rule, the median PSNR per run and the captures whose label
multiset was restored exactly. `--plot` draws identified share against iterations (log axis), one panel per
batch size, one line per (update mode, round), Wilson intervals as bars, the pooled label-only guess dashed.

    python benchmarks/budget_curve.py RUN --iterations 4000 1000 200 >> curves.jsonl   # per run (seed)
    python benchmarks/budget_table.py curves.jsonl [--plot docs/figures/budget_curves.png]
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

from fl_privacy.evaluation.identification import wilson_share

Key = tuple[int, str, int, int]  # examples, update mode, round, iterations


def attack_changes(row: dict) -> list[str]:
    """The attack overrides a curve ran with, but the engine's (which gives the same images)."""
    engine = "attack.gradient_inversion.engine="
    return sorted(o for o in row.get("overrides", []) if not o.startswith(engine))


def points(files: list[Path]) -> dict[Key, dict[str, dict]]:
    """(examples, mode, round, iterations) -> run -> that run's per-round point; a repeated measurement
    of one run and key, and curves run with different attack overrides, are refused."""
    table: dict[Key, dict[str, dict]] = defaultdict(dict)
    changes: list[str] | None = None
    for file in files:
        for line in file.read_text().splitlines():
            row = json.loads(line)
            if changes is None:
                changes = attack_changes(row)
            elif attack_changes(row) != changes:
                raise SystemExit(f"{file}: {row['run']} ran with {attack_changes(row)}, others with "
                                 f"{changes}: table one attack setting at a time")
            for round_number, point in row["by_round"].items():
                key = (row["examples"], row["update_mode"], int(round_number), row["iterations"])
                if row["run"] in table[key]:
                    raise SystemExit(f"{file}: {row['run']} measured twice at {key}")
                table[key][row["run"]] = point
    return table


def pooled(runs: dict[str, dict], entry: str) -> dict:
    """The Wilson share of `entry` pooled over the runs."""
    values = runs.values()
    return wilson_share(sum(p[entry]["hits"] for p in values), sum(p[entry]["n"] for p in values))


def share(stats: dict) -> str:
    return f"{stats['hits']}/{stats['n']} = {stats['share']:.2f} [{stats['low']:.2f}, {stats['high']:.2f}]"


def print_table(table: dict[Key, dict[str, dict]]) -> None:
    print("| examples | update | round | iterations | identified per run | **identified (MSE)** | SSIM "
          "| label-only | median PSNR dB per run | labels exact |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for key in sorted(table):
        runs = dict(sorted(table[key].items()))
        per_run = " / ".join(str(p["identified_mse"]["hits"]) for p in runs.values())
        psnrs = " / ".join(f"{p['median_psnr']:.1f}" for p in runs.values())
        labels = pooled(runs, "labels_exact")
        identified, ssim, guess = (share(pooled(runs, entry)) for entry in
                                   ("identified_mse", "identified_ssim", "label_only_mse"))
        print(f"| {key[0]} | {key[1]} | {key[2]} | {key[3]:,} | {per_run} | **{identified}** | {ssim} "
              f"| {guess} | {psnrs} | {labels['hits']}/{labels['n']} |")


def plot(table: dict[Key, dict[str, dict]], path: Path) -> None:
    """Identified share against iterations: one panel per batch size, one line per (update mode, round)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted({key[0] for key in table})
    rounds = sorted({key[2] for key in table})
    palette = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple")
    colours = dict(zip(rounds, palette, strict=False))
    figure, axes = plt.subplots(1, len(sizes), figsize=(4.5 * len(sizes), 3.8), squeeze=False, sharey=True,
                                 sharex=True)
    for axis, examples in zip(axes[0], sizes, strict=True):
        for mode, round_number in sorted({(k[1], k[2]) for k in table if k[0] == examples}, reverse=True):
            keys = sorted(k for k in table if k[:3] == (examples, mode, round_number))
            stats = [pooled(table[k], "identified_mse") for k in keys]
            seeds = sorted({len(table[k]) for k in keys})
            errors = [[s["share"] - s["low"] for s in stats], [s["high"] - s["share"] for s in stats]]
            axis.errorbar([k[3] for k in keys], [s["share"] for s in stats], yerr=errors, marker="o",
                          capsize=3, color=colours[round_number], linestyle="-" if mode == "fedsgd" else ":",
                          label=f"round {round_number}, {mode} ({'–'.join(map(str, seeds))} seeds)")
            for key, stat in zip(keys, stats, strict=True):  # a point on fewer seeds than its line says so
                if len(table[key]) < max(seeds):
                    axis.annotate(f"{len(table[key])} seed", (key[3], stat["share"]), fontsize=6,
                                  xytext=(4, -9), textcoords="offset points", color=colours[round_number])
        guess = max(pooled(table[k], "label_only_mse")["share"] for k in table if k[0] == examples)
        axis.axhline(guess, color="grey", linestyle="--", label="label-only guess (highest)")
        axis.set(xscale="log", xlabel="Inverting Gradients iterations", ylim=(0, 1.03), xlim=(100, 40000),
                 title=f"{examples} example{'s' if examples > 1 else ''} per update")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=6.5, loc="best")
    axes[0][0].set_ylabel("identified (MSE), Wilson 95%")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", type=Path, nargs="+")
    parser.add_argument("--plot", type=Path)
    args = parser.parse_args()
    table = points(args.files)
    print_table(table)
    if args.plot:
        plot(table, args.plot)


if __name__ == "__main__":
    main()
