"""The GAN attack table (`fl-privacy gan-table MULTIRUN`): one row per evaluated job (arm and seed), then one
row per arm (jobs that differ only in `seed`), from the runs' `gan/evaluation.json` (`fl-privacy gan-eval`).

Every judge's raw victim share stands beside its ceiling (its share on real victim images it never trained
on): two numbers, never their ratio, so no cell can exceed what the judge gives real data. The arm row shows
the mean and the range over seeds (no t interval: shares are bounded and n is small)."""

from __future__ import annotations

from pathlib import Path

from fl_privacy.report.jobs import Job, find_jobs
from fl_privacy.report.seeds import group_label, seed_groups
from fl_privacy.results import COMPLETED, RunFileError, read_json
from fl_privacy.run_layout import GAN_EVALUATION

JUDGE_NAMES = ("oracle_cnn", "lenet")


def _victim_accuracy(job: Job, victim: int, server_round: int) -> float:
    """The global model's accuracy on the victim class at `server_round` (NaN when not recorded)."""
    for record in job.records:
        if record.get("round") == server_round:
            per_class = record.get("central", {}).get("per_class_accuracy")
            if per_class and victim < len(per_class) and per_class[victim] is not None:
                return float(per_class[victim])
    return float("nan")


def _number(value: object) -> float:
    """A JSON number as float; null (a NaN when written: kappa of two constant verdicts) as NaN."""
    return float("nan") if value is None else float(value)  # type: ignore[arg-type]


def job_row(job: Job, evaluation: dict) -> dict[str, float]:
    """The headline numbers of one evaluated job at its final scored round."""
    final, baseline = evaluation["final"], evaluation["baseline"]
    row: dict[str, float] = {"round": float(final["round"])}
    for name in JUDGE_NAMES:
        judged = final["judges"].get(name, {})
        row[f"{name} share"] = _number(judged.get("share"))
        row[f"{name} ceiling"] = _number(judged.get("ceiling"))
    row["agreement"] = _number(final["judge_agreement"]["agree"])
    row["kappa"] = _number(final["judge_agreement"]["cohen_kappa"])
    row["Fréchet"] = float(final["frechet"])
    row["floor"] = float(final["frechet_floor"])
    row["Fréchet / floor"] = float(final["frechet_over_floor"])
    row["KID"] = float(final["kid"])
    row["KID SE"] = float(final["kid_se"])
    row["victim-class accuracy"] = _victim_accuracy(job, int(baseline["victim_class"]), int(final["round"]))
    row["record p (run, pixels)"] = float(evaluation["records_run"]["p_value"])
    row["planted"] = float(evaluation.get("planted_fraction", 0.0))
    return row


FORMATS = {"round": "{:.0f}", "KID": "{:.3g}", "KID SE": "{:.2g}", "Fréchet": "{:.1f}", "floor": "{:.2f}",
           "Fréchet / floor": "{:.1f}", "record p (run, pixels)": "{:.3g}", "planted": "{:.2f}"}


def _cell(values: list[float], column: str, summary: bool) -> str:
    fmt = FORMATS.get(column, "{:.3f}")
    shown = [v for v in values if v == v]  # NaN: not measured
    if not shown:
        return "-"
    if not summary or len(shown) == 1:
        return fmt.format(shown[0]) if len(values) == 1 else fmt.format(sum(shown) / len(shown))
    return f"{fmt.format(sum(shown) / len(shown))} ({fmt.format(min(shown))}–{fmt.format(max(shown))})"


def gan_table(root: Path) -> str:
    """The Markdown table over the finished, evaluated jobs under `root`: a row per seed, then the arm's
    mean (min–max over seeds)."""
    jobs = find_jobs(root)
    if not any((job.path / GAN_EVALUATION).exists() for job in jobs):
        raise RunFileError(f"{root}: no job has {GAN_EVALUATION} (run `fl-privacy gan-eval JOB` first)")
    columns: list[str] = []
    lines: list[str] = []
    for label, group in seed_groups(jobs).items():
        evaluated = [(job, read_json(job.path / GAN_EVALUATION)) for job in group
                     if (job.path / GAN_EVALUATION).exists()]
        if not evaluated:
            continue
        rows = [job_row(job, evaluation) for job, evaluation in evaluated]
        columns = columns or list(rows[0])
        for (job, _), row in zip(evaluated, rows, strict=True):
            lines.append("| " + " | ".join([label, job.overrides.get("seed", "?")]
                                            + [_cell([row[c]], c, False) for c in columns]) + " |")
        unfinished = [f"s{job.overrides.get('seed', '?')}: {job.status}" for job in jobs
                      if job.status != COMPLETED and group_label(job) == label]
        lines.append("| " + " | ".join([f"**{label}**", f"mean (range), n = {len(rows)}"
                                        + (f"; not completed: {', '.join(unfinished)}" if unfinished else "")]
                                       + [_cell([row[c] for row in rows], c, True) for c in columns]) + " |")
    header = ["arm", "seed", *columns]
    return "\n".join(["| " + " | ".join(header) + " |", "|" + " --- |" * len(header), *lines])
