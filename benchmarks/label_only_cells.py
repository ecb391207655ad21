"""The label-only guess (and the blank, class-mean and negative-control baselines, and the attack beside
them) identified in every cell of finished `realism*` runs, pooled over seeds, with the comparison pool's
smallest size a class. With `--rescore`, each run's reconstructions are first scored again by the current
code (`score_reconstructions`: the pool is every image of the data set outside the batch), in place: copy a
run you want to keep as it was.

    python benchmarks/label_only_cells.py --rescore runs/label_only/s*_e*
    python benchmarks/label_only_cells.py --json runs/label_only/s*_e*    (one JSON line per cell)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from scipy.stats import binomtest

from fl_privacy.cli.commands import run_settings
from fl_privacy.lab.pipelines.inversion_pipeline import score_reconstructions
from fl_privacy.results import read_json, read_summary
from fl_privacy.run_layout import ATTACK_SCORES

NAMES = ("attack", "label_only", "class_mean", "blank", "negative_control")


def cell_key(run_dir: Path) -> tuple[int, str, int]:
    """(examples, update mode, clients) of a run."""
    config = read_summary(run_dir)["config"]
    capture = config["strategy"]["capture"]
    return capture["examples"], capture["update_mode"], config["simulation"]["num_clients"]


def share(hits: int, n: int) -> str:
    """`hits/n = share [low, high]` (Wilson 95%)."""
    if not n:
        return "-"
    ci = binomtest(hits, n).proportion_ci(method="wilson")
    return f"{hits}/{n} = {hits / n:.3f} [{ci.low:.3f}, {ci.high:.3f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--rescore", action="store_true",
                        help="score each run again first (in place); runs scored by older code "
                             "(no comparison pool in scores.json) always are")
    parser.add_argument("--json", action="store_true", help="one JSON line per cell instead of the table")
    args = parser.parse_args()
    cells: dict[tuple, dict] = {}
    for run in sorted(r for r in args.runs if r.is_dir()):  # a shell glob may bring the runs' logs
        if args.rescore or "comparison_pool" not in read_json(run / ATTACK_SCORES):
            score_reconstructions(run, run_settings(run, "attack", []))
        scores = read_json(run / ATTACK_SCORES)
        seed = read_summary(run)["config"]["seed"]
        for round_number, by_round in scores["identification_by_round"].items():
            cell = cells.setdefault((*cell_key(run), int(round_number)),
                                    {"seeds": [], "pool_min": None, **{n: [0, 0] for n in NAMES},
                                     "label_only_per_seed": []})
            cell["seeds"].append(seed)
            pool = scores.get("comparison_pool", {}).get("min_per_class")
            if pool is not None:
                cell["pool_min"] = pool if cell["pool_min"] is None else min(pool, cell["pool_min"])
            for name in NAMES:
                stat = by_round["identified"].get(name)
                if stat:
                    cell[name][0] += stat["hits"]
                    cell[name][1] += stat["n"]
            label_only = by_round["identified"]["label_only"]
            cell["label_only_per_seed"].append(f"{label_only['hits']}/{label_only['n']}")
    if args.json:
        for (examples, mode, clients, round_number), cell in sorted(cells.items()):
            print(json.dumps({"examples": examples, "update_mode": mode, "clients": clients,
                              "round": round_number, **cell}))
        return
    print("| examples | update | round | seeds | pool (min a class) | label-only (per seed) "
          "| label-only identified | class mean | blank | negative control | attack |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for (examples, mode, clients, round_number), cell in sorted(cells.items()):
        update = "FedSGD" if mode == "fedsgd" else "FedAvg"
        print(f"| {examples} ({clients} clients) | {update} | {round_number} "
              f"| {','.join(map(str, cell['seeds']))} | {cell['pool_min']} "
              f"| {' / '.join(cell['label_only_per_seed'])} | **{share(*cell['label_only'])}** | "
              + " | ".join(share(*cell[n]) for n in ("class_mean", "blank", "negative_control", "attack"))
              + " |")


if __name__ == "__main__":
    main()
