"""The PAR-GAN table (`fl-privacy par-gan-table MULTIRUN [MULTIRUN ...]`): one row per seed and k from the
jobs' `par_gan_table.json`, then one row per k with the mean over seeds and the interval
`report.statistics` allows (a column a run did not measure, e.g. the Monte-Carlo attack with
`monte_carlo_samples=0`, shows "-")."""

from __future__ import annotations

from pathlib import Path

from fl_privacy.report.jobs import find_jobs
from fl_privacy.report.seeds import SEED, mean_ci_cell
from fl_privacy.report.statistics import metric_bounds
from fl_privacy.results import COMPLETED, RunFileError, read_json
from fl_privacy.run_layout import PAR_GAN_TABLE, SUMMARY

# column -> (key of a par_gan_table.json row, format)
COLUMNS: dict[str, tuple[str, str]] = {
    "generator steps": ("steps", "{:.0f}"),
    "passes / record": ("epochs_per_record", "{:.0f}"),
    "white-box max AUC": ("white_box_max_auc", "{:.3f}"),
    "white-box mean AUC": ("white_box_mean_auc", "{:.3f}"),
    "black-box nearest (pixel) AUC": ("black_box_pixel_auc", "{:.3f}"),
    "black-box nearest (oracle features) AUC": ("black_box_feature_auc", "{:.3f}"),
    "generator-only Monte-Carlo AUC": ("monte_carlo_auc", "{:.3f}"),
    "oracle confidence": ("oracle_confidence", "{:.3f}"),
    "not data": ("not_data_share", "{:.3f}"),
    "class balance": ("class_balance", "{:.2f}"),
    "Fréchet distance": ("frechet_distance", "{:.0f}"),
    "training s": ("train_seconds", "{:.0f}"),
}


def par_gan_table(*roots: Path) -> str:
    """The Markdown table over the finished PAR-GAN jobs under `roots` (runs or multiruns, e.g. one per
    seed): per seed and k, then per k the mean over its jobs with the standard's interval."""
    header = ["seed", "k", "records / discriminator", *COLUMNS]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    by_k: dict[int, list[dict]] = {}
    for job in (job for root in roots for job in find_jobs(root)):
        if job.status != COMPLETED or not (job.path / PAR_GAN_TABLE).exists():
            continue
        members = read_json(job.path / SUMMARY)["config"]["defense"]["par_gan"]["members"]
        for row in read_json(job.path / PAR_GAN_TABLE):
            k = int(row["discriminators"])
            by_k.setdefault(k, []).append(row)
            cells = [fmt.format(row[key]) if key in row else "-" for key, fmt in COLUMNS.values()]
            first = [job.overrides.get(SEED, "?"), str(k), str(members // k)]
            lines.append("| " + " | ".join([*first, *cells]) + " |")
    if not by_k:
        raise RunFileError(f"{', '.join(map(str, roots))}: no finished job with {PAR_GAN_TABLE}")
    for k, rows in sorted(by_k.items()):
        measured = {key: [float(row[key]) for row in rows if key in row] for key, _ in COLUMNS.values()}
        cells = [mean_ci_cell(measured[key], fmt, metric_bounds(key)) if measured[key] else "-"
                 for key, fmt in COLUMNS.values()]
        lines.append("| " + " | ".join([f"**mean [95% CI] (n = {len(rows)})**", str(k), "", *cells]) + " |")
    return "\n".join(lines)
