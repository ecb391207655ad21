"""The realism sweep's table: one row per cell (model and partition, captured round, examples per update,
local training) from finished `realism*` runs or multiruns, pooled over the seeds that ran it: the
identified share (attack, then label-only, class-mean, blank and negative control, all through the same
matching and rule; Wilson 95% CI), the older recognisable share over all images (Wilson 95% CI) and per
seed (mean ± 95% t CI over seeds), the median
PSNR per seed (with its bootstrap 95% CI for a single seed), the labelled best-candidate upper bound, the
three trivial baselines, the label results and seconds per image; then a compact matrix of the shares (the
heat map as text).

    python benchmarks/realism_table.py multirun/realism multirun/realism_iid multirun/realism_anchor
    python benchmarks/realism_table.py --montage 20 docs/figures/realism_round20_fedsgd_4.png \
        multirun/realism/0
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from PIL import Image
from scipy.stats import binomtest

from fl_privacy.report.seeds import mean_ci_cell

BASELINES = ("label_only", "class_mean", "blank", "negative_control")


def cells(run_dir: Path):
    """(key, row) per captured round of one finished run."""
    summary = json.loads((run_dir / "summary.json").read_text())
    scores = json.loads((run_dir / "attack" / "scores.json").read_text())
    config = summary["config"]
    capture = config["strategy"]["capture"]
    setting = f"{config['model']['name']}/{config['partition']['name']}"
    clients = config["simulation"]["num_clients"]
    local = ("FedSGD" if capture["update_mode"] == "fedsgd"
             else f"FedAvg (1 epoch, batches of {capture['batch_size']})")
    for round_number, rates in scores["rates_by_round"].items():
        captured = [c for c in scores["captures"] if str(c["round"]) == round_number]
        images = sum(c["num_inputs"] for c in captured)
        yield (setting, clients, int(round_number), capture["examples"], local), {
            "seed": config["seed"], "rates": rates, "captures": len(captured),
            "identified": scores.get("identification_by_round", {}).get(round_number, {}).get("identified"),
            "labels_exact": sum(c["labels_exact"] for c in captured),
            "label_multiset": sum(c["label_count_accuracy"] * c["num_inputs"] for c in captured) / images,
            "seconds_per_image": sum(c["seconds"] for c in captured) / images,
            # optimisation steps each capture's restarts took (below the budget after an early stop)
            "iterations_run": [step for c in captured for step in c.get("iterations_run", [])]}


def interval(stat: dict, digits: int = 1) -> str:
    low, high = stat["ci95"]
    return f"{stat['median']:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def pooled_share(runs: list[dict]) -> str:
    """Recognisable share over every image of the cell's runs, Wilson 95% CI, n; the per-seed shares'
    mean ± 95% t CI when more than one seed ran it."""
    stats = [run["rates"]["recognisable"] for run in runs]
    hits, n = sum(round(s["share"] * s["n"]) for s in stats), sum(s["n"] for s in stats)
    ci = binomtest(hits, n).proportion_ci(method="wilson")
    text = f"{hits / n:.2f} [{ci.low:.2f}, {ci.high:.2f}] (n={n})"
    if len(runs) > 1:
        text += f"; seeds {mean_ci_cell([s['share'] for s in stats], '{:.2f}')}"
    return text


def identified(runs: list[dict], name: str) -> str:
    """The cell's pooled identified share of `name` (attack or a baseline), Wilson 95% CI, n."""
    stats = [run["identified"][name] for run in runs if run["identified"] and name in run["identified"]]
    if not stats:
        return "-"
    hits, n = sum(s["hits"] for s in stats), sum(s["n"] for s in stats)
    ci = binomtest(hits, n).proportion_ci(method="wilson")
    return f"{hits / n:.2f} [{ci.low:.2f}, {ci.high:.2f}] (n={n})"


def median_steps(runs: list[dict]) -> str:
    """The median number of optimisation steps the cell's restarts took ('-' where not recorded)."""
    steps = [step for run in runs for step in run["iterations_run"]]
    return f"{statistics.median(steps):g}" if steps else "-"


def per_seed(runs: list[dict], pick) -> str:
    """One run's median [CI], or the runs' medians joined by ' / ' (seed order)."""
    stats = [pick(run["rates"]) for run in runs]
    if any(s is None for s in stats):
        return "-"
    return interval(stats[0]) if len(stats) == 1 else " / ".join(f"{s['median']:.1f}" for s in stats)


def montage(run_dir: Path, round_number: int, out: Path) -> None:
    """One PNG of a round's per-capture truth | reconstruction grids, one capture per row."""
    grids = [Image.open(p).convert("L")
             for p in sorted((run_dir / "attack" / "grids").glob(f"round_{round_number:03d}_*.png"))]
    sheet = Image.new("L", (max(g.width for g in grids), sum(g.height for g in grids)), 255)
    for row, grid in enumerate(grids):
        sheet.paste(grid, (0, sum(g.height for g in grids[:row])))
    sheet.save(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dirs", nargs="+", type=Path, help="run or multirun directories")
    parser.add_argument("--montage", nargs=2, metavar=("ROUND", "PNG"),
                        help="instead: stack the truth | reconstruction grids of ROUND of one run into PNG")
    args = parser.parse_args()
    if args.montage:
        montage(args.dirs[0], int(args.montage[0]), Path(args.montage[1]))
        return
    runs = sorted({p.parent.parent for d in args.dirs for p in d.glob("**/attack/scores.json")})
    table: dict[tuple, list[dict]] = {}
    for key, row in (cell for run in runs for cell in cells(run)):
        table.setdefault(key, []).append(row)
    print("| model/partition/clients | round | examples | local training | seeds "
          "| identified (MSE) [Wilson 95%] "
          "| label-only / class-mean / blank / negative control identified | recognisable [Wilson 95%] "
          "| median PSNR dB (per seed) | upper bound: best candidate by PSNR | blank / class-mean / "
          "same-class PSNR | labels exact (captures) / multiset | s per image |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for (setting, clients, round_number, examples, local), cell in sorted(table.items()):
        cell = sorted(cell, key=lambda run: run["seed"])
        base = {name: sum(run["rates"]["baselines"][name]["psnr"]["median"] for run in cell) / len(cell)
                for name in ("blank", "class_mean", "same_class_image")}
        images = sum(run["rates"]["recognisable"]["n"] for run in cell)
        multiset = sum(run["label_multiset"] * run["rates"]["recognisable"]["n"] for run in cell) / images
        print(f"| {setting}/{clients} | {round_number} | {examples} | {local} | "
              f"{','.join(str(run['seed']) for run in cell)} | {identified(cell, 'attack')} | "
              f"{' / '.join(identified(cell, b) for b in BASELINES)} | {pooled_share(cell)} | "
              f"{per_seed(cell, lambda rates: rates['reconstruction']['psnr'])} | "
              f"{per_seed(cell, lambda rates: rates.get('upper_bound_best_candidate_by_psnr'))} | "
              f"{base['blank']:.1f} / {base['class_mean']:.1f} / {base['same_class_image']:.1f} | "
              f"{sum(run['labels_exact'] for run in cell)}/{sum(run['captures'] for run in cell)} / "
              f"{multiset:.2f} | "
              f"{sum(run['seconds_per_image'] for run in cell) / len(cell):.1f} | "
              f"{median_steps(cell)} |")
    columns = sorted({examples for _, _, _, examples, _ in table})
    header = " | ".join(f"{b} examples" for b in columns)
    print(f"\n| model/partition, local training, round | {header} |")
    print("|---|" + "---|" * len(columns))
    # one matrix row per model/partition, whatever federation size each column's cells came from
    by_setting = {(setting, r, b, lt): (clients, runs)
                  for (setting, clients, r, b, lt), runs in table.items()}
    for setting, local, round_number in sorted({(s, lt, r) for s, r, _, lt in by_setting}):
        entries = [by_setting.get((setting, round_number, b, local)) for b in columns]
        print(f"| {setting}, {local}, round {round_number} | " + " | ".join(
            f"{pooled_share(runs)} [{clients} clients]" if runs else "not run"
            for clients, runs in (e or (None, None) for e in entries)) + " |")


if __name__ == "__main__":
    main()
