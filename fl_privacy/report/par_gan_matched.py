"""PAR-GAN's k compared at matched sample quality (`fl-privacy par-gan-table --matched`, issue 28).

A larger k trades sample quality for leak, so comparing the final generators of k = 1 and k = 5
confounds the two. Each run with `defense.par_gan.quality_checkpoints` holds, per k, the generator-only
attacks' AUCs and the Fréchet distance at every checkpoint and at the last step
(`par_gan_quality_curves.json`). Per seed, the reference quality is the worst final Fréchet distance
over its k (usually the largest k's); each k is represented by its checkpoint whose Fréchet distance is
nearest that reference (its distance is shown, so a poor match is visible). The paired difference of
the largest and smallest k over seeds, at matched quality and at the final step, gets the statistics
standard's interval (bootstrap, clipped to [−1, 1]).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fl_privacy.report.jobs import find_jobs
from fl_privacy.report.seeds import SEED
from fl_privacy.report.statistics import summarise, summary_cell
from fl_privacy.results import COMPLETED, RunFileError, read_json
from fl_privacy.run_layout import PAR_GAN_QUALITY_CURVES

FRECHET = "frechet_distance"
DIFFERENCE_BOUNDS = (-1.0, 1.0)  # a difference of two AUCs


@dataclass(frozen=True)
class SeedCurves:
    """One run's leak-vs-quality curves: k -> points ({step, frechet_distance, NAME_auc, ...}), the last
    point of each being the final generator."""

    seed: str
    curves: dict[int, list[dict]]

    @property
    def reference_frechet(self) -> float:
        """The worst (largest) final Fréchet distance over the run's k: the quality every k is matched to."""
        return max(points[-1][FRECHET] for points in self.curves.values())

    def matched(self, k: int) -> dict:
        """k's point whose Fréchet distance is nearest the reference."""
        return min(self.curves[k], key=lambda point: abs(point[FRECHET] - self.reference_frechet))


def read_curves(*roots: Path) -> list[SeedCurves]:
    """The curves of every finished run under `roots` that measured them (at least two k)."""
    found = []
    for job in (job for root in roots for job in find_jobs(root)):
        path = job.path / PAR_GAN_QUALITY_CURVES
        if job.status == COMPLETED and path.exists():
            curves = {int(k): points for k, points in read_json(path).items()}
            if len(curves) >= 2:
                found.append(SeedCurves(job.overrides.get(SEED, job.name), curves))
    if not found:
        raise RunFileError(f"{', '.join(map(str, roots))}: no finished job with {PAR_GAN_QUALITY_CURVES} "
                           "for two or more k (run with defense.par_gan.quality_checkpoints)")
    return found


def attack_names(runs: list[SeedCurves]) -> list[str]:
    """The `NAME_auc` keys every point of every run has."""
    keys = [set(point) for run in runs for points in run.curves.values() for point in points]
    return sorted(key for key in set.intersection(*keys) if key.endswith("_auc"))


def matched_quality_table(*roots: Path) -> str:
    """Markdown: per seed, each k's matched point (step, Fréchet, AUCs); then per attack the paired
    difference (largest k − smallest k) over seeds at matched quality and at the final step."""
    runs = read_curves(*roots)
    attacks = attack_names(runs)
    ks = sorted(set.intersection(*(set(run.curves) for run in runs)))
    low, high = ks[0], ks[-1]
    header = ["seed", "reference Fréchet", "k", "matched step", "its Fréchet", *attacks]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for run in runs:
        for k in ks:
            point = run.matched(k)
            cells = [f"{point[name]:.3f}" for name in attacks]
            lines.append(f"| {run.seed} | {run.reference_frechet:.0f} | {k} | {point['step']} "
                         f"| {point[FRECHET]:.0f} | " + " | ".join(cells) + " |")
    lines += ["", f"| k = {high} − k = {low}, paired over n = {len(runs)} seeds | at matched quality: "
              "per seed | mean [95% bootstrap CI] | at the final step: per seed | mean [95% bootstrap CI] |",
              "| --- | --- | --- | --- | --- |"]
    for name in attacks:
        cells = []
        for pick in (lambda run, k: run.matched(k), lambda run, k: run.curves[k][-1]):
            differences = [pick(run, high)[name] - pick(run, low)[name] for run in runs]
            summary = summarise(differences, DIFFERENCE_BOUNDS)
            cells += [", ".join(f"{d:+.3f}" for d in differences), summary_cell(summary, "{:+.3f}")]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
