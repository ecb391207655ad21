"""The GAN attribution table (`fl-privacy gan-table MULTIRUN`): one row per arm (jobs that differ only
in `seed`), each cell the mean over the arm's seeds with the interval `report.statistics` allows, from the
runs' `gan/evaluation.json` (written by `fl-privacy gan-eval`)."""

from __future__ import annotations

from pathlib import Path

from fl_privacy.report.jobs import find_jobs
from fl_privacy.report.seeds import group_label, mean_ci_cell, seed_groups
from fl_privacy.report.statistics import metric_bounds
from fl_privacy.results import COMPLETED, RunFileError, read_json
from fl_privacy.run_layout import GAN_EVALUATION

# column -> (path into the final round of gan/evaluation.json or its baseline, format)
COLUMNS: dict[str, tuple[str, str]] = {
    "share / ceiling": ("final.relative_share", "{:.3f}"),
    "KID": ("final.kid", "{:.3g}"),
    "KID SE (subsets)": ("final.kid_se", "{:.2g}"),
    "KID floor (real/real)": ("baseline.kid_floor_members_vs_nonmembers.kid", "{:.3g}"),
    "KID other classes": ("baseline.kid_other_vs_victim.kid", "{:.3g}"),
    "Fréchet": ("final.frechet", "{:.0f}"),
    "Fréchet to non-members − to members": ("final.frechet_gap_test.gap", "{:.0f}"),
    "Fréchet floor (real/real)": ("baseline.frechet_floor_members_vs_nonmembers", "{:.0f}"),
    "Fréchet other classes": ("baseline.frechet_other_vs_victim", "{:.0f}"),
    "diversity": ("final.diversity_ratio", "{:.2f}"),
    "NN member (feat.)": ("final.records_features.nn_member", "{:.2f}"),
    "NN non-member (feat.)": ("final.records_features.nn_nonmember", "{:.2f}"),
    "nearest is member (feat.)": ("final.records_features.nearest_is_member", "{:.3f}"),
    "NN member (pixels)": ("final.records_pixels.nn_member", "{:.2f}"),
    "NN non-member (pixels)": ("final.records_pixels.nn_nonmember", "{:.2f}"),
}
P_VALUES = ("final.records_features.p_value", "final.records_pixels.p_value",
            "final.frechet_gap_test.p_value")


def _get(node: dict, dotted: str) -> float:
    for key in dotted.split("."):
        node = node[key]
    return float(node)  # type: ignore[arg-type]


def gan_table(root: Path) -> str:
    """The Markdown table over the finished, evaluated jobs under `root`."""
    header = ["arm", "n (seeds)", "not completed", "round", *COLUMNS,
              "p: NN test feat., pixels; Fréchet gap, per seed"]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    jobs = find_jobs(root)
    if not any((job.path / GAN_EVALUATION).exists() for job in jobs):
        raise RunFileError(f"{root}: no job has {GAN_EVALUATION} (run `fl-privacy gan-eval JOB` first)")
    for label, group in seed_groups(jobs).items():
        evaluated = [job for job in group if (job.path / GAN_EVALUATION).exists()]
        if not evaluated:
            continue
        evaluations = [read_json(job.path / GAN_EVALUATION) for job in evaluated]
        seeds = [job.overrides.get("seed", "?") for job in evaluated]
        unfinished = ", ".join(f"s{job.overrides.get('seed', '?')}: {job.status}" for job in jobs
                               if job.status != COMPLETED and group_label(job) == label) or "none"
        rounds = sorted({e["final"]["round"] for e in evaluations})
        cells = [mean_ci_cell([_get(e, path) for e in evaluations], fmt, metric_bounds(path))
                 for path, fmt in COLUMNS.values()]
        p_values = "; ".join(f"s{seed}: " + ", ".join(f"{_get(e, p):.3g}" for p in P_VALUES)
                             for seed, e in zip(seeds, evaluations, strict=True))
        lines.append("| " + " | ".join([label, str(len(evaluations)), unfinished, ",".join(map(str, rounds)),
                                        *cells, p_values]) + " |")
    return "\n".join(lines)
