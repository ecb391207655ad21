"""`python -m fl_privacy.evaluation.attack_table DIR [--by KEY ...] [--per-round]`: a Markdown table of
the attack scores of every run under DIR (a run or a multirun directory), one row per run (and capture
round with --per-round), labelled by config keys such as `client.batch_size` or `model.name`."""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Sequence
from pathlib import Path

from omegaconf import OmegaConf

COLUMNS = ("images", "median PSNR (dB)", "median SSIM", "median MSE 0-255", "label acc.",
           "exact label counts", "label-count acc.", "s / capture")


def _row(captures: list[dict]) -> list[str]:
    images = [c for c in captures if "images" in c]
    psnr = [v for c in images for v in c["images"]["psnr"]]
    ssim = [v for c in images for v in c["images"]["ssim"]]
    mse = [v for c in images for v in c["images"]["mse_255"]]
    hits = sum(c["label_accuracy"] * c["num_inputs"] for c in images)
    cells = [sum(c["num_inputs"] for c in captures),
             f"{statistics.median(psnr):.1f}" if psnr else "-",
             f"{statistics.median(ssim):.3f}" if ssim else "-",
             f"{statistics.median(mse):.3g}" if mse else "-",
             f"{hits / sum(c['num_inputs'] for c in images):.3f}" if images else "-",
             f"{statistics.fmean(c['labels_exact'] for c in captures):.3f}",
             f"{statistics.fmean(c['label_count_accuracy'] for c in captures):.3f}",
             f"{statistics.median(c['seconds'] for c in captures):.1f}"]
    return [str(cell) for cell in cells]


def attack_table(root: Path, by: Sequence[str] = (), per_round: bool = False) -> str:
    """The Markdown table of every `attack/scores.json` under `root`."""
    header = [*by, *(["capture round"] if per_round else []), *COLUMNS]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for scores_file in sorted(Path(root).rglob("attack/scores.json"), key=lambda p: str(p)):
        run_dir = scores_file.parent.parent
        cfg = OmegaConf.create(json.loads((run_dir / "summary.json").read_text())["config"])
        labels = [str(OmegaConf.select(cfg, key)) for key in by]
        captures = json.loads(scores_file.read_text())["captures"]
        groups = sorted({c["round"] for c in captures}) if per_round else [None]
        for group in groups:
            chosen = [c for c in captures if group is None or c["round"] == group]
            lines.append("| " + " | ".join([*labels, *([str(group)] if per_round else []), *_row(chosen)])
                         + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m fl_privacy.evaluation.attack_table")
    parser.add_argument("root", type=Path, help="a run or multirun directory")
    parser.add_argument("--by", nargs="*", default=[], help="config keys that label the rows")
    parser.add_argument("--per-round", action="store_true", help="one row per capture round")
    args = parser.parse_args(argv)
    print(attack_table(args.root, args.by, args.per_round))


if __name__ == "__main__":
    main()
