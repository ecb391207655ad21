"""Markdown tables over finished runs (a run or a multirun directory), rows labelled by config keys:
- `attack_table`: gradient-inversion scores (`attack/scores.json`), one row per run (and capture round);
- `membership_table`: membership-inference results (`mia/scores.json`), one row per run and attack, with
  the target model's test accuracy and, for DP runs, the largest client ε;
- `dp_audit_table`: the empirical ε lower bound of canary audits (`dp_audit/scores.json`) beside the
  accounted ε, one row per setting, mean and t-interval over seeds."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from pathlib import Path

from omegaconf import OmegaConf
from scipy import stats

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


DP_AUDIT_COLUMNS = ("n (seeds)", "accounted ε (max over seeds)", "empirical ε lower bound: mean ± 95% CI",
                    "per seed", "confidence", "canary AUC: mean ± 95% CI", "final accuracy: mean")


def _mean_ci(values: list[float]) -> str:
    """mean ± the half-width of Student's t 95% interval (n ≥ 2)."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return f"{mean:.3f}"
    half = stats.t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return f"{mean:.3f} ± {half:.3f}"


def dp_audit_table(root: Path, by: Sequence[str] = ()) -> str:
    """The Markdown table of every `dp_audit/scores.json` under `root`, one row per value of the `by`
    keys, aggregated over the runs (seeds) that share it."""
    groups: dict[tuple[str, ...], list[tuple[dict, dict]]] = {}
    for scores_file in sorted(Path(root).rglob("dp_audit/scores.json"), key=str):
        run_dir = scores_file.parent.parent
        summary = read_summary(run_dir)
        cfg = OmegaConf.create(summary["config"])
        labels = tuple(_label(run_dir, cfg, key) for key in by)
        groups.setdefault(labels, []).append((read_json(scores_file), summary))
    lines = ["| " + " | ".join([*by, *DP_AUDIT_COLUMNS]) + " |",
             "|" + " --- |" * (len(by) + len(DP_AUDIT_COLUMNS))]
    for labels, runs in groups.items():
        accounted = [s["accounted_epsilon"] for s, _ in runs]
        bounds = [s["epsilon_lower_bound"] for s, _ in runs]
        cells = [str(len(runs)),
                 "∞" if any(e is None or math.isinf(e) for e in accounted) else f"{max(accounted):.3f}",
                 _mean_ci(bounds), ", ".join(f"{b:.2f}" for b in bounds),
                 ", ".join(sorted({f"{s['confidence']:.0%}" for s, _ in runs})),
                 _mean_ci([s["canary_auc"] for s, _ in runs]),
                 f"{statistics.fmean(m['metrics']['final']['accuracy'] for _, m in runs):.3f}"]
        lines.append("| " + " | ".join([*labels, *cells]) + " |")
    return "\n".join(lines)
