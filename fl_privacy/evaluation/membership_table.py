"""`python -m fl_privacy.evaluation.membership_table DIR [--by KEY ...]`: a Markdown table of the
membership-inference results (`mia/scores.json`) of every run under DIR (a run or a multirun directory):
one row per run and attack with AUC, balanced accuracy, TPR at 1% and 0.1% FPR, the target model's test
accuracy and, for DP runs, the largest client epsilon; rows labelled by config keys such as
`client.dp.target_epsilon`."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from omegaconf import OmegaConf

COLUMNS = ("attack", "AUC", "balanced acc.", "TPR@1% FPR", "TPR@0.1% FPR", "FPR resolution",
           "target acc.", "max client ε")


def _epsilon(summary: dict) -> str:
    epsilon = (summary.get("privacy") or {}).get("max_epsilon")
    return "∞" if epsilon is None else f"{epsilon:.2f}"


def _label(run_dir: Path, cfg, key: str) -> str:
    """The value of `key` as the job's command line set it (summary.json writes inf as null), else the
    config's; `mia.*` keys always from the audit's own settings (merged into `cfg`)."""
    overrides = run_dir / ".hydra" / "overrides.yaml"
    if overrides.exists() and not key.startswith("mia."):
        for override in OmegaConf.load(overrides):
            if str(override).lstrip("+").startswith(f"{key}="):
                return str(override).split("=", 1)[1]
    return str(OmegaConf.select(cfg, key))


def membership_table(root: Path, by: Sequence[str] = ()) -> str:
    """The Markdown table of every `mia/scores.json` under `root`."""
    lines = ["| " + " | ".join([*by, *COLUMNS]) + " |", "|" + " --- |" * (len(by) + len(COLUMNS))]
    for scores_file in sorted(Path(root).rglob("mia/scores.json"), key=str):
        summary = json.loads((scores_file.parent.parent / "summary.json").read_text())
        scores = json.loads(scores_file.read_text())
        # the audit's own settings (the membership command may have overridden the run's mia keys)
        cfg = OmegaConf.merge(summary["config"], {"mia": scores.get("settings", {})})
        labels = [_label(scores_file.parent.parent, cfg, key) for key in by]
        for name, metrics in scores["attacks"].items():
            cells = [name, f"{metrics['auc']:.3f}", f"{metrics['balanced_accuracy']:.3f}",
                     f"{metrics['tpr_at_1pct_fpr']:.3f}", f"{metrics['tpr_at_0.1pct_fpr']:.3f}",
                     f"{metrics['fpr_resolution']:.2g}", f"{scores['target_accuracy']:.3f}",
                     _epsilon(summary)]
            lines.append("| " + " | ".join([*labels, *cells]) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m fl_privacy.evaluation.membership_table")
    parser.add_argument("root", type=Path, help="a run or multirun directory")
    parser.add_argument("--by", nargs="*", default=[], help="config keys that label the rows")
    args = parser.parse_args(argv)
    print(membership_table(args.root, args.by))


if __name__ == "__main__":
    main()
