"""Aggregation over seeds: jobs whose overrides differ only in `seed` form a group; for every number
of the group's finished jobs, the per-seed values, the mean, n and the interval `report.statistics`
allows (bootstrap clipped to the range for bounded numbers, t only for unbounded means over ≥ 5 seeds);
per-round measures as a mean line with its 95% band."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fl_privacy.figures import plot_bands
from fl_privacy.report.jobs import Job, round_values
from fl_privacy.report.statistics import metric_bounds, summarise, summary_cell
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


def mean_ci(values: list[float], bounds: tuple[float, float] | None = None) -> tuple[float, float, float]:
    """(mean, low, high) under the statistics standard (`report.statistics.summarise`): a bootstrap
    interval clipped to `bounds` for a bounded number, t for an unbounded one with ≥ 5 values; the
    bounds are NaN where the standard gives no interval."""
    summary = summarise(values, bounds)
    return summary.mean, summary.low, summary.high


def mean_ci_cell(values: list[float], fmt: str = "{:.3f}", bounds: tuple[float, float] | None = None) -> str:
    """`mean [low, high]` under the statistics standard, formatted with `fmt` (the mean alone where the
    standard gives no interval, "n/a" for no value; diverged values are counted, not dropped)."""
    if not values:
        return "n/a"
    return summary_cell(summarise(values, bounds), fmt)


def seed_rows(jobs: list[Job]) -> list[dict]:
    """One row per group and number: group, metric, n, mean, ci_low, ci_high, the interval's method,
    the number of diverged (non-finite) seeds, seeds and every seed's value."""
    rows = []
    for label, group in seed_groups(jobs).items():
        for metric in sorted({key for job in group for key in job.values}):
            having = [job for job in group
                      if metric in job.values and _number(job.values[metric]) is not None]
            if not having:
                continue
            values = [_number(job.values[metric]) for job in having]
            summary = summarise(values, metric_bounds(metric))
            rows.append({"group": label, "metric": metric, "n": summary.n, "mean": summary.mean,
                         "ci_low": summary.low, "ci_high": summary.high, "method": summary.method,
                         "diverged": summary.diverged,
                         "seeds": ",".join(job.overrides.get(SEED, "?") for job in having),
                         "values": ";".join(f"{v:.6g}" for v in values)})
    return rows


def _number(value: object) -> float | None:
    """A metric value as a float (NaN and ±∞ kept: a diverged seed is reported), None if not a number."""
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def round_bands(group: list[Job], measure: str) -> tuple[list[int], np.ndarray, np.ndarray, np.ndarray]:
    """Rounds where every job of the group has `measure`, and its mean, CI low and CI high there."""
    per_job = [{r["round"]: v for r in job.records if (v := round_values(r).get(measure)) is not None}
               for job in group]
    rounds = sorted(set.intersection(*(set(p) for p in per_job))) if per_job else []
    bounds = metric_bounds(measure)
    bands = np.array([mean_ci([p[r] for p in per_job], bounds) for r in rounds]).reshape(-1, 3)
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
