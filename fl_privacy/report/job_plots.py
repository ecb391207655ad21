"""The report's plots over jobs: central accuracy and attack success per round, one line per job."""

from __future__ import annotations

from pathlib import Path

from fl_privacy.figures import plt, save_figure
from fl_privacy.report.jobs import Job, round_values
from fl_privacy.results import COMPLETED

MAX_ROUND_PANELS = 4


def _label(job: Job, keys: list[str]) -> str:
    swept = ", ".join(f"{key}={job.overrides.get(key, '?')}" for key in keys)
    return f"job {job.name}" + (f": {swept}" if swept else "")


def plot_accuracy_rounds(jobs: list[Job], keys: list[str], path: Path) -> bool:
    """Central test accuracy per round, one line per job; False when no job has rounds."""
    jobs = [job for job in jobs if any(r.get("central") for r in job.records)]
    if not jobs:
        return False
    figure, axis = plt.subplots(figsize=(6.4, 3.6), dpi=110)
    for job in jobs:
        points = [(r["round"], r["central"]["accuracy"]) for r in job.records if r.get("central")]
        axis.plot(*zip(*points, strict=True), marker=".", linewidth=1.1, label=_label(job, keys),
                  linestyle="--" if job.status != COMPLETED else "-")
    axis.set_xlabel("round (0 = after warm-up)")
    axis.set_ylabel("central test accuracy")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=6, loc="best")
    figure.tight_layout()
    save_figure(figure, path)
    return True


def round_attack_keys(jobs: list[Job]) -> list[str]:
    """The per-round attack (and privacy) measures in the jobs' metrics.jsonl (e.g. `gan_attack.victim_share`,
    `privacy.max_epsilon`); per-client numbers are left to the table."""
    keys = {key for job in jobs for record in job.records for key in round_values(record)
            if ".per_client." not in key}
    preferred = [key for key in keys if key.endswith(("victim_share", "psnr", "auc"))]
    return sorted(preferred) + sorted(keys - set(preferred))


def plot_attack_rounds(jobs: list[Job], keys: list[str], path: Path) -> list[str]:
    """Attack success per round (one panel per measure, at most 4); returns the measures drawn."""
    measures = round_attack_keys(jobs)[:MAX_ROUND_PANELS]
    if not measures:
        return []
    figure, axes = plt.subplots(1, len(measures), figsize=(4.2 * len(measures), 3.4), dpi=110, squeeze=False)
    for axis, measure in zip(axes[0], measures, strict=True):
        for job in jobs:
            points = [(r["round"], v) for r in job.records if (v := round_values(r).get(measure)) is not None]
            if points:
                axis.plot(*zip(*points, strict=True), marker=".", linewidth=1.1, label=_label(job, keys))
        axis.set_xlabel("round")
        axis.set_title(measure, fontsize=9)
        axis.grid(alpha=0.3)
    axes[0][0].legend(fontsize=6, loc="best")
    figure.tight_layout()
    save_figure(figure, path)
    return measures
