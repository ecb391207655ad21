"""Build `PATH/report/`: jobs.csv, the plots, and report.html, written to a fresh folder then swapped in."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from fl_privacy.figures import plot_frontier, plot_sweep_curve
from fl_privacy.report.job_plots import plot_accuracy_rounds, plot_attack_rounds
from fl_privacy.report.jobs import (
    ATTACK_METRICS,
    COLOR_KEYS,
    Job,
    find_jobs,
    first_match,
    varying_overrides,
)
from fl_privacy.report.page import csv_text, html_page, table_rows
from fl_privacy.report.seeds import plot_seed_bands, seed_groups, seed_rows
from fl_privacy.results import staged_folder
from fl_privacy.run_layout import (
    REPORT_ACCURACY,
    REPORT_ATTACK_ROUNDS,
    REPORT_DIR,
    REPORT_FRONTIER,
    REPORT_JOBS,
    REPORT_PAGE,
    REPORT_SEED_BANDS,
    REPORT_SEEDS,
    REPORT_SWEEP,
)

log = logging.getLogger(__name__)


@dataclass
class Report:
    """What `build_report` wrote and read: the folder, the jobs, the table, the chosen frontier axes."""

    out: Path
    jobs: list[Job]
    columns: list[str]
    rows: list[dict]
    metric: str | None
    color: str | None

    @property
    def html(self) -> Path:
        return self.out / REPORT_PAGE

    @property
    def csv(self) -> Path:
        return self.out / REPORT_JOBS


def build_report(root: Path, out: Path | None = None, metric: str | None = None,
                 color: str | None = None) -> Report:
    """Aggregate the run or multirun directory `root` into `out` (default `root/report`).

    `metric`: the attack-success column of the frontier (default: the first of `ATTACK_METRICS` found);
    `color`: the column that colours it (default: `privacy.max_epsilon`, else the first swept key).
    Rerunning on the same jobs rewrites byte-identical files.
    """
    root = Path(root)
    out = Path(out) if out is not None else root / REPORT_DIR
    jobs = find_jobs(root)
    columns, rows = table_rows(jobs)
    swept = varying_overrides(jobs)
    metric = metric or first_match(ATTACK_METRICS, columns)
    color = color or first_match(COLOR_KEYS, columns) or (swept[0] if swept else None)
    notes = [f"Source: {root.resolve()}"]
    if swept:
        notes.append("Swept: " + ", ".join(swept))
    common = [key for key in dict.fromkeys(k for job in jobs for k in job.overrides) if key not in swept]
    if common and len(jobs) > 1:
        notes.append("Common overrides (in jobs.csv, not in the table below): "
                     + " ".join(f"{key}={jobs[0].overrides.get(key)}" for key in common))
    shown = [c for c in columns if c not in common] if len(jobs) > 1 else columns
    with staged_folder(out) as staging:
        (staging / REPORT_JOBS).write_text(csv_text(columns, rows))
        plots = []
        if plot_accuracy_rounds(jobs, swept, staging / REPORT_ACCURACY):
            plots.append((staging / REPORT_ACCURACY, "central test accuracy per round"))
        measures = plot_attack_rounds(jobs, swept, staging / REPORT_ATTACK_ROUNDS)
        if measures:
            plots.append((staging / REPORT_ATTACK_ROUNDS,
                          "attack and privacy measures per round: " + ", ".join(measures)))
        if metric and plot_frontier(rows, metric, color, staging / REPORT_FRONTIER):
            plots.append((staging / REPORT_FRONTIER, f"{metric} vs accuracy, colour: {color}"))
        elif len(jobs) > 1:
            notes.append(f"No frontier plot: needs an attack measure ({metric or 'none found'}) "
                         "in at least two finished jobs.")
        if metric and swept and plot_sweep_curve(rows, swept[0], metric, staging / REPORT_SWEEP):
            plots.append((staging / REPORT_SWEEP, f"{metric} and accuracy vs {swept[0]}"))
        aggregated = seed_rows(jobs)
        if aggregated and any(len(group) > 1 for group in seed_groups(jobs).values()):
            (staging / REPORT_SEEDS).write_text(csv_text(list(aggregated[0]), aggregated))
            notes.append("seeds.csv: per group of jobs that differ only in seed, every number's per-seed "
                         "values, mean, n and 95% interval (bootstrap for bounded numbers, t only for "
                         "unbounded ones over >= 5 seeds)")
            if measures and plot_seed_bands(jobs, measures, staging / REPORT_SEED_BANDS):
                plots.append((staging / REPORT_SEED_BANDS,
                              "per-round measures over seeds: mean and 95% band"))
        page = html_page(f"fl-privacy report: {root.name}", jobs, shown, rows, plots, notes)
        (staging / REPORT_PAGE).write_text(page)
    log.info("report of %d jobs (%s) in %s", len(jobs),
             ", ".join(f"{job.name}: {job.status}" for job in jobs), out)
    return Report(out, jobs, columns, rows, metric, color)
