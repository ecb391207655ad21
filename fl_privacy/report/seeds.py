"""Aggregation over seeds: jobs whose overrides differ only in `seed` form a group; for every number
of the group's finished jobs, the mean, a 95% Student-t interval and n; per-round measures as a mean
line with its 95% band."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import numpy as np
from scipy import stats

from fl_privacy.figures import plot_bands
from fl_privacy.report.jobs import Job, round_values
from fl_privacy.results import COMPLETED

SEED = "seed"


def group_label(job: Job) -> str:
    """The job's overrides other than `seed`, in order."""
    return " ".join(f"{k}={v}" for k, v in job.overrides.items() if k != SEED) or "(no overrides)"


def seed_groups(jobs: list[Job]) -> dict[str, list[Job]]:
    """Finished jobs grouped by their overrides other than `seed` (`group_label`)."""
    groups: dict[str, list[Job]] = {}
    for job in jobs:
        if job.status == COMPLETED:
            groups.setdefault(group_label(job), []).append(job)
    return groups


def mean_ci(values: list[float]) -> tuple[float, float, float]:
    """(mean, low, high) of a 95% Student-t interval; the bounds are NaN for fewer than two values."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.975, len(values) - 1)) * statistics.stdev(values) / math.sqrt(len(values))
    return mean, mean - half, mean + half


def mean_ci_cell(values: list[float], fmt: str = "{:.3f}") -> str:
    """`mean ± half-width of the 95% t interval` formatted with `fmt` (the mean alone for one value,
    "n/a" for none)."""
    if not values:
        return "n/a"
    mean, low, high = mean_ci(values)
    if math.isnan(low):
        return fmt.format(mean)
    return f"{fmt.format(mean)} ± {fmt.format((high - low) / 2)}"


def seed_rows(jobs: list[Job]) -> list[dict]:
    """One row per group and number: group, metric, n, mean, ci_low, ci_high, seeds."""
    rows = []
    for label, group in seed_groups(jobs).items():
        seeds = ",".join(job.overrides.get(SEED, "?") for job in group)
        for metric in sorted({key for job in group for key in job.values}):
            values = [float(job.values[metric]) for job in group
                      if metric in job.values and math.isfinite(float(job.values[metric]))]
            if values:
                mean, low, high = mean_ci(values)
                rows.append({"group": label, "metric": metric, "n": len(values), "mean": mean,
                             "ci_low": low, "ci_high": high, "seeds": seeds})
    return rows


def round_bands(group: list[Job], measure: str) -> tuple[list[int], np.ndarray, np.ndarray, np.ndarray]:
    """Rounds where every job of the group has `measure`, and its mean, CI low and CI high there."""
    per_job = [{r["round"]: v for r in job.records if (v := round_values(r).get(measure)) is not None}
               for job in group]
    rounds = sorted(set.intersection(*(set(p) for p in per_job))) if per_job else []
    bands = np.array([mean_ci([p[r] for p in per_job]) for r in rounds]).reshape(-1, 3)
    return rounds, bands[:, 0], bands[:, 1], bands[:, 2]


def plot_seed_bands(jobs: list[Job], measures: list[str], path: Path) -> bool:
    """Per-round `measures` of every group with at least two seeds: mean and 95% band; False if none."""
    groups = {label: group for label, group in seed_groups(jobs).items() if len(group) >= 2}
    curves = {measure: {f"{label} (n={len(group)})": round_bands(group, measure)
                        for label, group in groups.items()} for measure in measures}
    curves = {m: {k: v for k, v in c.items() if v[0]} for m, c in curves.items()}
    if not any(curves.values()):
        return False
    plot_bands(curves, path)
    return True
