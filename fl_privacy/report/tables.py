"""Markdown tables over finished runs (a run or a multirun directory), rows labelled by config keys:
- `attack_table`: gradient-inversion scores (`attack/scores.json`), one row per run (and capture round);
- `success_table`: the recognisable share (Wilson CI), median PSNR / SSIM (bootstrap CI) and the blank /
  class-mean / same-class-image baselines of each run (`rates` in `attack/scores.json`);
- `membership_table`: membership-inference results (`mia/scores.json`), one row per run and attack, with
  the target model's test accuracy and, for DP runs, the largest client ε."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path

from omegaconf import OmegaConf

from fl_privacy.results import read_json, read_summary

ATTACK_COLUMNS = ("images", "median PSNR (dB)", "median SSIM", "median MSE 0-255", "label acc.",
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
    header = [*by, *(["capture round"] if per_round else []), *ATTACK_COLUMNS]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for scores_file in sorted(Path(root).rglob("attack/scores.json"), key=lambda p: str(p)):
        run_dir = scores_file.parent.parent
        cfg = OmegaConf.create(read_summary(run_dir)["config"])
        labels = [str(OmegaConf.select(cfg, key)) for key in by]
        captures = read_json(scores_file)["captures"]
        groups = sorted({c["round"] for c in captures}) if per_round else [None]
        for group in groups:
            chosen = [c for c in captures if group is None or c["round"] == group]
            lines.append("| " + " | ".join([*labels, *([str(group)] if per_round else []), *_row(chosen)])
                         + " |")
    return "\n".join(lines)


BASELINE_NAMES = {"blank": "blank", "class_mean": "class mean", "same_class_image": "same-class image"}
SUCCESS_COLUMNS = ("images", "recognisable (95% CI)", "median PSNR (95% CI)", "median SSIM (95% CI)",
                   *(f"{label} PSNR / SSIM" for label in BASELINE_NAMES.values()))


def _with_ci(cell: dict, digits: int) -> str:
    low, high = cell["ci95"]
    return f"{cell['median']:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def _success_row(rates: dict) -> list[str]:
    share = rates["recognisable"]
    cells = [str(share["n"]),
             f"{share['share']:.2f} [{share['ci95'][0]:.2f}, {share['ci95'][1]:.2f}] ({share['hits']})",
             _with_ci(rates["reconstruction"]["psnr"], 1), _with_ci(rates["reconstruction"]["ssim"], 3)]
    baselines = rates["baselines"]
    return cells + [f"{baselines[name]['psnr']['median']:.1f} / {baselines[name]['ssim']['median']:.3f}"
                    for name in BASELINE_NAMES]


def success_table(root: Path, by: Sequence[str] = ()) -> str:
    """The Markdown table of every run's success rate and baselines (runs scored before `rates` existed
    are left out)."""
    header = [*by, *SUCCESS_COLUMNS]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for scores_file in sorted(Path(root).rglob("attack/scores.json"), key=lambda p: str(p)):
        rates = read_json(scores_file).get("rates")
        if rates is None:
            continue
        cfg = OmegaConf.create(read_summary(scores_file.parent.parent)["config"])
        labels = [str(OmegaConf.select(cfg, key)) for key in by]
        lines.append("| " + " | ".join([*labels, *_success_row(rates)]) + " |")
    return "\n".join(lines)


MEMBERSHIP_COLUMNS = ("attack", "AUC", "balanced acc.", "TPR@1% FPR", "TPR@0.1% FPR", "FPR resolution",
           "target acc.", "max client ε")


def _epsilon(summary: dict) -> str:
    epsilon = (summary.get("privacy") or {}).get("max_epsilon")
    return "∞" if epsilon is None else f"{epsilon:.2f}"


def _label(run_dir: Path, cfg, key: str) -> str:
    """The value of `key` as the job's command line set it (summary.json writes inf as null), else the
    config's; `attack.membership.*` keys always from the audit's own settings (merged into `cfg`)."""
    overrides = run_dir / ".hydra" / "overrides.yaml"
    if overrides.exists() and not key.startswith("attack.membership."):
        for override in OmegaConf.load(overrides):
            if str(override).lstrip("+").startswith(f"{key}="):
                return str(override).split("=", 1)[1]
    return str(OmegaConf.select(cfg, key))


def membership_table(root: Path, by: Sequence[str] = ()) -> str:
    """The Markdown table of every `mia/scores.json` under `root`."""
    lines = ["| " + " | ".join([*by, *MEMBERSHIP_COLUMNS]) + " |",
             "|" + " --- |" * (len(by) + len(MEMBERSHIP_COLUMNS))]
    for scores_file in sorted(Path(root).rglob("mia/scores.json"), key=str):
        summary = read_summary(scores_file.parent.parent)
        scores = read_json(scores_file)
        # the audit's own settings (the membership command may have overridden the run's mia keys)
        cfg = OmegaConf.merge(summary["config"], {"attack": {"membership": scores.get("settings", {})}})
        labels = [_label(scores_file.parent.parent, cfg, key) for key in by]
        for name, metrics in scores["attacks"].items():
            cells = [name, f"{metrics['auc']:.3f}", f"{metrics['balanced_accuracy']:.3f}",
                     f"{metrics['tpr_at_1pct_fpr']:.3f}", f"{metrics['tpr_at_0.1pct_fpr']:.3f}",
                     f"{metrics['fpr_resolution']:.2g}", f"{scores['target_accuracy']:.3f}",
                     _epsilon(summary)]
            lines.append("| " + " | ".join([*labels, *cells]) + " |")
    return "\n".join(lines)
