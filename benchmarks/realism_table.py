"""The realism sweep's table: one row per cell (model and partition, captured round, examples per update,
local training) from finished `realism*` runs or multiruns, with the recognisable share (Wilson 95% CI), the
median PSNR (bootstrap 95% CI), the labelled best-candidate upper bound, the three trivial baselines, the
label results and seconds per image; then a compact matrix of the shares (the heat map as text).

    python benchmarks/realism_table.py multirun/realism multirun/realism_iid multirun/realism_anchor
    python benchmarks/realism_table.py --montage 20 docs/figures/realism_round20_fedsgd_4.png \
        multirun/realism/0
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from PIL import Image


def cells(run_dir: Path):
    """(key, row) per captured round of one finished run."""
    summary = json.loads((run_dir / "summary.json").read_text())
    scores = json.loads((run_dir / "attack" / "scores.json").read_text())
    config = summary["config"]
    capture = config["strategy"]["capture"]
    setting = f"{config['model']['name']}/{config['partition']['name']}"
    local = ("FedSGD" if capture["update_mode"] == "fedsgd"
             else f"FedAvg (1 epoch, batches of {capture['batch_size']})")
    for round_number, rates in scores["rates_by_round"].items():
        captured = [c for c in scores["captures"] if str(c["round"]) == round_number]
        images = sum(c["num_inputs"] for c in captured)
        yield (setting, int(round_number), capture["examples"], local), {
            "rates": rates, "captures": len(captured),
            "labels_exact": sum(c["labels_exact"] for c in captured),
            "label_multiset": sum(c["label_count_accuracy"] * c["num_inputs"] for c in captured) / images,
            "seconds_per_image": sum(c["seconds"] for c in captured) / images}


def interval(stat: dict, digits: int = 1) -> str:
    low, high = stat["ci95"]
    return f"{stat['median']:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def share(stat: dict) -> str:
    low, high = stat["ci95"]
    return f"{stat['share']:.2f} [{low:.2f}, {high:.2f}] (n={stat['n']})"


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
    table = dict(cell for run in runs for cell in cells(run))
    print("| model/partition | round | examples | local training | recognisable [Wilson 95%] | median PSNR "
          "dB [95%] | upper bound: best candidate by PSNR | blank / class-mean / same-class PSNR | labels "
          "exact (captures) / multiset | s per image |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for (setting, round_number, examples, local), row in sorted(table.items()):
        rates, base = row["rates"], row["rates"]["baselines"]
        upper = rates.get("upper_bound_best_candidate_by_psnr")
        print(f"| {setting} | {round_number} | {examples} | {local} | {share(rates['recognisable'])} | "
              f"{interval(rates['reconstruction']['psnr'])} | {interval(upper) if upper else '-'} | "
              f"{base['blank']['psnr']['median']:.1f} / {base['class_mean']['psnr']['median']:.1f} / "
              f"{base['same_class_image']['psnr']['median']:.1f} | {row['labels_exact']}/{row['captures']} / "
              f"{row['label_multiset']:.2f} | {row['seconds_per_image']:.1f} |")
    columns = sorted({examples for _, _, examples, _ in table})
    header = " | ".join(f"{b} examples" for b in columns)
    print(f"\n| model/partition, local training, round | {header} |")
    print("|---|" + "---|" * len(columns))
    for setting, local, round_number in sorted({(s, lt, r) for s, r, _, lt in table}):
        entries = [table.get((setting, round_number, b, local)) for b in columns]
        print(f"| {setting}, {local}, round {round_number} | " + " | ".join(
            share(e["rates"]["recognisable"]) if e else "not run" for e in entries) + " |")


if __name__ == "__main__":
    main()
