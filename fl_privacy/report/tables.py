"""Markdown tables over finished runs (a run or a multirun directory), rows labelled by config keys:
- `attack_table`: gradient-inversion scores (`attack/scores.json`), one row per run (and capture round);
- `success_table`: the recognisable share (Wilson CI), median PSNR / SSIM (bootstrap CI) and the blank /
  class-mean / same-class-image baselines of each run (`rates` in `attack/scores.json`);
- `membership_table`: membership-inference results (`mia/scores.json`), one row per run and attack, with
  bootstrap CIs, the target model's test accuracy and, for DP runs, the largest client ε; with
  `over_runs`, one row per label and attack: every run's AUC and the mean over the runs (seeds);
- `update_table`: the server's per-round attack on a client's updates (`mia/updates.json`), one row per
  round, each attack's AUC as the mean over runs, and the final-model LOSS row;
- `dp_audit_table`: the empirical ε lower bound of canary audits (`dp_audit/scores.json`) beside the
  accounted ε and the most the audit could show, one row per setting, per seed and mean over seeds, and
  how many runs contradict their claimed ε after Holm's correction over every run of the table;
- `fl_audit_table`: the federated one-shot ε estimates (`dp_audit_fl/scores.json`) beside the accounted ε.
Intervals over seeds follow `report.statistics` (bootstrap clipped to the range for bounded numbers, t only
for unbounded means over ≥ 5 seeds)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from fl_privacy.privacy_record import PrivacySummary
from fl_privacy.report.seeds import mean_ci_cell
from fl_privacy.report.statistics import NON_NEGATIVE, UNIT, holm, per_seed_cell
from fl_privacy.results import find_run_files, read_json, read_summary
from fl_privacy.run_layout import (
    ATTACK_SCORES,
    DP_AUDIT_FL_SCORES,
    DP_AUDIT_SCORES,
    HYDRA_OVERRIDES,
    MIA_SCORES,
    MIA_UPDATES,
)

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
    for scores_file in find_run_files(root, ATTACK_SCORES):
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


def _median_with_ci(cell: dict, digits: int) -> str:
    low, high = cell["ci95"]
    return f"{cell['median']:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def _success_row(rates: dict) -> list[str]:
    share = rates["recognisable"]
    cells = [str(share["n"]),
             f"{share['share']:.2f} [{share['ci95'][0]:.2f}, {share['ci95'][1]:.2f}] ({share['hits']})",
             _median_with_ci(rates["reconstruction"]["psnr"], 1),
             _median_with_ci(rates["reconstruction"]["ssim"], 3)]
    baselines = rates["baselines"]
    return cells + [f"{baselines[name]['psnr']['median']:.1f} / {baselines[name]['ssim']['median']:.3f}"
                    for name in BASELINE_NAMES]


def success_table(root: Path, by: Sequence[str] = ()) -> str:
    """The Markdown table of every run's success rate and baselines (runs scored before `rates` existed
    are left out)."""
    header = [*by, *SUCCESS_COLUMNS]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for scores_file in find_run_files(root, ATTACK_SCORES):
        rates = read_json(scores_file).get("rates")
        if rates is None:
            continue
        cfg = OmegaConf.create(read_summary(scores_file.parent.parent)["config"])
        labels = [str(OmegaConf.select(cfg, key)) for key in by]
        lines.append("| " + " | ".join([*labels, *_success_row(rates)]) + " |")
    return "\n".join(lines)


MEMBERSHIP_COLUMNS = ("attack", "AUC [95% CI]", "balanced acc.", "TPR@1% FPR [95% CI]", "TPR@0.1% FPR",
                      "non-members", "min FPR", "target acc.", "max client ε")
MEAN_COLUMNS = ("attack", "runs", "AUC per run", "AUC mean [95% bootstrap CI]",
                "TPR@1% FPR mean [95% bootstrap CI]", "TPR@0.1% FPR mean", "non-members (min)",
                "target acc. mean")


def _epsilon(summary: dict) -> str:
    epsilon = PrivacySummary.from_json(summary.get("privacy")).max_epsilon
    return "∞" if epsilon is None or math.isinf(epsilon) else f"{epsilon:.2f}"


def _label(run_dir: Path, cfg, key: str) -> str:
    """The value of `key` as the job's command line set it (summary.json writes inf as null), else the
    config's; `attack.membership.*` keys always from the audit's own settings (merged into `cfg`)."""
    overrides = run_dir / HYDRA_OVERRIDES
    if overrides.exists() and not key.startswith("attack.membership."):
        for override in OmegaConf.load(overrides):
            if str(override).lstrip("+").startswith(f"{key}="):
                return str(override).split("=", 1)[1]
    return str(OmegaConf.select(cfg, key))


def _with_ci(metrics: dict, key: str) -> str:
    """`value [low, high]`; `n/a` where the FPR is below 1/non-members (not measured)."""
    value = metrics.get(key)
    if value is None:
        return "n/a"
    interval = metrics.get(f"{key}_ci")
    return f"{value:.3f}" + (f" [{interval[0]:.3f}, {interval[1]:.3f}]" if interval else "")


def _membership_rows(root: Path, by: Sequence[str]):
    """(labels, attack, metrics, audit scores, summary) of every attack of every `mia/scores.json`."""
    for scores_file in find_run_files(root, MIA_SCORES):
        summary = read_summary(scores_file.parent.parent)
        scores = read_json(scores_file)
        # the audit's own settings (the membership command may have overridden the run's mia keys)
        cfg = OmegaConf.merge(summary["config"], {"attack": {"membership": scores.get("settings", {})}})
        labels = [_label(scores_file.parent.parent, cfg, key) for key in by]
        for name, metrics in scores["attacks"].items():
            yield labels, name, metrics, scores, summary


def membership_table(root: Path, by: Sequence[str] = (), over_runs: bool = False) -> str:
    """The Markdown table of every `mia/scores.json` under `root` (`over_runs`: means over runs)."""
    columns = MEAN_COLUMNS if over_runs else MEMBERSHIP_COLUMNS
    lines = ["| " + " | ".join([*by, *columns]) + " |", "|" + " --- |" * (len(by) + len(columns))]
    groups: dict[tuple, list[tuple[dict, dict]]] = {}
    for labels, name, metrics, scores, summary in _membership_rows(root, by):
        if over_runs:
            groups.setdefault((*labels, name), []).append((metrics, scores))
            continue
        cells = [name, _with_ci(metrics, "auc"), f"{metrics['balanced_accuracy']:.3f}",
                 _with_ci(metrics, "tpr_at_1pct_fpr"), _with_ci(metrics, "tpr_at_0.1pct_fpr"),
                 str(metrics["num_non_members"]), f"{metrics['fpr_resolution']:.2g}",
                 f"{scores['target_accuracy']:.3f}", _epsilon(summary)]
        lines.append("| " + " | ".join([*labels, *cells]) + " |")
    for (*labels, name), runs in groups.items():
        tprs = {key: [m[key] for m, _ in runs if m.get(key) is not None]
                for key in ("tpr_at_1pct_fpr", "tpr_at_0.1pct_fpr")}
        cells = [name, str(len(runs)), per_seed_cell([m["auc"] for m, _ in runs], "{:.3f}"),
                 mean_ci_cell([m["auc"] for m, _ in runs], bounds=UNIT),
                 mean_ci_cell(tprs["tpr_at_1pct_fpr"], bounds=UNIT),
                 f"{np.mean(tprs['tpr_at_0.1pct_fpr']):.3f}" if tprs["tpr_at_0.1pct_fpr"] else "n/a",
                 str(min(m["num_non_members"] for m, _ in runs)),
                 f"{np.mean([s['target_accuracy'] for _, s in runs]):.3f}"]
        lines.append("| " + " | ".join([*labels, *cells]) + " |")
    return "\n".join(lines)


def update_table(root: Path) -> str:
    """The per-round update attack of every `mia/updates.json` under `root`, averaged over the runs."""
    runs = [read_json(path) for path in find_run_files(root, MIA_UPDATES)]
    names = list(runs[0]["rounds"][0]["attacks"])
    header = ["round", "runs", *[f"{name} AUC" for name in names], *[f"{name} TPR@1% FPR" for name in names]]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    by_round: dict[int, list[dict]] = {}
    for run in runs:
        for entry in run["rounds"]:
            by_round.setdefault(entry["round"], []).append(entry["attacks"])
    for number, entries in sorted(by_round.items()):
        cells = [str(number), str(len(entries)),
                 *[mean_ci_cell([e[name]["auc"] for e in entries], bounds=UNIT) for name in names],
                 *[mean_ci_cell([e[name]["tpr_at_1pct_fpr"] for e in entries
                                 if e[name]["tpr_at_1pct_fpr"] is not None], bounds=UNIT) for name in names]]
        lines.append("| " + " | ".join(cells) + " |")
    final = [run["final_model_loss"] for run in runs]
    lines.append("| final global model, LOSS | " + str(len(final)) + " | "
                 + mean_ci_cell([f["auc"] for f in final], bounds=UNIT) + " |" + " |" * (len(names) - 1) + " "
                 + mean_ci_cell([f["tpr_at_1pct_fpr"] for f in final if f["tpr_at_1pct_fpr"] is not None],
                                bounds=UNIT)
                 + " |" + " |" * (len(names) - 1))
    members = sorted({(run["num_members"], run["num_non_members"]) for run in runs})
    return "\n".join(lines) + f"\n\n(members, non-members) per run: {members}"


DP_AUDIT_COLUMNS = ("n (seeds)", "accounted ε (max over seeds)", "max showable ε",
                    "empirical ε lower bound per seed", "mean [95% bootstrap CI]", "confidence",
                    "violations (Holm over the table)", "canary AUC per seed", "canary AUC mean [95% CI]",
                    "final accuracy per seed")


def dp_audit_table(root: Path, by: Sequence[str] = ()) -> str:
    """The Markdown table of every `dp_audit/scores.json` under `root`, one row per value of the `by`
    keys, aggregated over the runs (seeds) that share it."""
    groups: dict[tuple[str, ...], list[tuple[dict, dict]]] = {}
    for scores_file in find_run_files(root, DP_AUDIT_SCORES):
        run_dir = scores_file.parent.parent
        summary = read_summary(run_dir)
        cfg = OmegaConf.create(summary["config"])
        labels = tuple(_label(run_dir, cfg, key) for key in by)
        groups.setdefault(labels, []).append((read_json(scores_file), summary))
    lines = ["| " + " | ".join([*by, *DP_AUDIT_COLUMNS]) + " |",
             "|" + " --- |" * (len(by) + len(DP_AUDIT_COLUMNS))]
    # each run's claim "the training is (claimed ε, δ)-DP", all tested together: Holm over the table's runs
    pvalues = [s.get("violation_pvalue") for runs in groups.values() for s, _ in runs]
    known = [p for p in pvalues if p is not None]
    adjusted = iter(holm(known)) if known else iter(())
    flags = [None if p is None else next(adjusted) < 1 - s["confidence"]
             for p, s in zip(pvalues, (s for runs in groups.values() for s, _ in runs), strict=True)]
    position = 0
    for labels, runs in groups.items():
        accounted = [s["accounted_epsilon"] for s, _ in runs]
        bounds = [s["epsilon_lower_bound"] for s, _ in runs]
        showable = sorted({f"{s['max_showable_epsilon']:.2f}" for s, _ in runs
                           if "max_showable_epsilon" in s})
        flagged = flags[position:position + len(runs)]
        position += len(runs)
        cells = [str(len(runs)),
                 "∞" if any(e is None or math.isinf(e) for e in accounted) else f"{max(accounted):.3f}",
                 ", ".join(showable) or "-", per_seed_cell(bounds), mean_ci_cell(bounds, bounds=NON_NEGATIVE),
                 ", ".join(sorted({f"{s['confidence']:.0%}" for s, _ in runs})),
                 "-" if None in flagged else f"{sum(map(bool, flagged))} of {len(runs)}",
                 per_seed_cell([s["canary_auc"] for s, _ in runs], "{:.3f}"),
                 mean_ci_cell([s["canary_auc"] for s, _ in runs], bounds=UNIT),
                 per_seed_cell([m["metrics"]["final"]["accuracy"] for _, m in runs], "{:.3f}")]
        lines.append("| " + " | ".join([*labels, *cells]) + " |")
    return "\n".join(lines)


FL_AUDIT_COLUMNS = ("seed", "accounted ε", "ε estimate (Gaussian fits)", "ε estimate (equal variance)",
                    "fresh-canary control ε (fits / equal var.)", "inserted cosine mean ± sd",
                    "fresh cosine mean ± sd", "separation p", "canaries (inserted / fresh)", "final accuracy")


def fl_audit_table(root: Path, by: Sequence[str] = ()) -> str:
    """The Markdown table of every `dp_audit_fl/scores.json` under `root`: one row per run (estimates
    are per run; the canaries give each its own spread)."""
    lines = ["| " + " | ".join([*by, *FL_AUDIT_COLUMNS]) + " |",
             "|" + " --- |" * (len(by) + len(FL_AUDIT_COLUMNS))]
    for scores_file in find_run_files(root, DP_AUDIT_FL_SCORES):
        run_dir = scores_file.parent.parent
        summary, scores = read_summary(run_dir), read_json(scores_file)
        cfg = OmegaConf.create(summary["config"])
        control = scores.get("fresh_control") or {}
        accounted = scores["accounted_epsilon"]
        infinite = accounted is None or math.isinf(accounted)
        cells = [str(cfg.get("seed")), "∞" if infinite else f"{accounted:.2f}",
                 f"{scores['empirical_epsilon']:.2f}",
                 f"{scores.get('empirical_epsilon_equal_variance', math.nan):.2f}",
                 f"{control.get('empirical_epsilon', math.nan):.2f} / "
                 f"{control.get('empirical_epsilon_equal_variance', math.nan):.2f}",
                 f"{scores['inserted_cosine_mean']:.4f} ± {scores['inserted_cosine_std']:.4f}",
                 f"{scores['fresh_cosine_mean']:.4f} ± {scores['fresh_cosine_std']:.4f}",
                 f"{scores['separation_pvalue']:.2g}", f"{scores['num_inserted']} / {scores['num_fresh']}",
                 f"{summary['metrics']['final']['accuracy']:.3f}"]
        lines.append("| " + " | ".join([*(_label(run_dir, cfg, key) for key in by), *cells]) + " |")
    return "\n".join(lines)
