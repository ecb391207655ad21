"""Find the jobs of a run or Hydra multirun directory and read what each left behind.

A multirun directory (`multirun/DATE/TIME/`) has `multirun.yaml` and one numbered folder per job;
the sweep in `multirun.yaml` says which job numbers to expect, so a job that never started is
reported as missing. A job's status is the one its summary.json records (`completed`, `failed`,
`interrupted`, or `running` for a run that is still going or was killed); a job folder without
summary.json failed before it started. The report's own folder is never read as a job.
"""

from __future__ import annotations

import fnmatch
import logging
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import ListConfig, OmegaConf

from fl_privacy.config.sweeps import sweep_overrides
from fl_privacy.results import COMPLETED, FAILED, RunFileError, read_json, read_metrics
from fl_privacy.run_layout import (
    GAN_EVALUATION,
    HYDRA_DIR,
    HYDRA_OVERRIDES,
    JOB_IMAGE_PATTERNS,
    METRICS,
    REPORT_DIR,
    SUMMARY,
    SWEEP_FILE,
)

log = logging.getLogger(__name__)

# summary.json sections that describe the run rather than measure it.
NOT_MEASURED = ("config", "versions", "telemetry_environment")
# metrics.jsonl sections that every run has; anything else per round (e.g. `gan_attack`) is an attack probe.
ROUND_SECTIONS = ("round", "central", "train", "evaluate", "seconds")
# Attack success measures, first found wins when --metric is not given (fnmatch patterns over columns).
ATTACK_METRICS = ("attack.median_psnr", "attack.psnr_median", "attacks.gan_attack.final.victim_share",
                  "mia.*auc*", "attacks.*.auc", "attack.label_accuracy")
# The colour of the frontier, first found wins when --color is not given.
COLOR_KEYS = ("privacy.max_epsilon",)


@dataclass
class Job:
    """One run of a sweep: where it is, how it ended, its overrides, and its numbers."""

    name: str
    path: Path
    status: str  # completed | failed | interrupted | running | missing
    overrides: dict[str, str] = field(default_factory=dict)
    values: dict[str, float] = field(default_factory=dict)  # flat: accuracy, loss, attack.median_psnr, ...
    records: list[dict] = field(default_factory=list)  # metrics.jsonl
    images: list[Path] = field(default_factory=list)


def flatten_numbers(node, prefix: str = "") -> dict[str, float]:
    """Numeric leaves of nested dicts with dotted names (lists and strings are skipped)."""
    if isinstance(node, bool):
        return {prefix: int(node)} if prefix else {}
    if isinstance(node, int | float):
        return {prefix: node} if prefix else {}
    if not isinstance(node, dict):
        return {}
    flat: dict[str, float] = {}
    for key, value in node.items():
        flat.update(flatten_numbers(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def parse_overrides(overrides: list[str]) -> dict[str, str]:
    """`['+experiment=dlg', 'seed=1']` -> {'experiment': 'dlg', 'seed': '1'} (in order)."""
    parsed = {}
    for override in overrides:
        key, _, value = str(override).partition("=")
        parsed[key.lstrip("+~")] = value
    return parsed


def summary_values(summary: dict) -> dict[str, float]:
    """The final numbers of a run: accuracy, loss, rounds, wall time, then every measured section flat."""
    metrics = summary.get("metrics") or {}
    final = metrics.get("final") or {}
    headline = {"accuracy": final.get("accuracy"), "loss": final.get("loss"),
                "best_accuracy": metrics.get("best_accuracy"), "rounds": metrics.get("rounds"),
                "wall_seconds": summary.get("wall_seconds")}
    values: dict[str, float] = {k: v for k, v in headline.items() if v is not None}
    for section, content in summary.items():
        if section not in (*NOT_MEASURED, "metrics", "wall_seconds"):
            values.update(flatten_numbers(content, section))
    return values


def round_values(record: dict) -> dict[str, float]:
    """The attack probes' numbers of one metrics.jsonl line, flat (e.g. `gan_attack.victim_share`)."""
    return flatten_numbers({k: v for k, v in record.items() if k not in ROUND_SECTIONS})


def _overrides(overrides_file: Path) -> dict[str, str]:
    try:
        return parse_overrides(list(OmegaConf.load(overrides_file)))
    except Exception as error:  # YAML, OmegaConf and I/O errors alike: the file is unreadable
        raise RunFileError(f"{overrides_file} cannot be read ({type(error).__name__})") from None


def read_job(name: str, path: Path, expected: dict[str, str] | None = None) -> Job:
    """Everything the report needs from one job folder (missing pieces are tolerated)."""
    path = Path(path)
    if not path.is_dir():
        return Job(name, path, "missing", dict(expected or {}))
    overrides_file = path / HYDRA_OVERRIDES
    overrides = _overrides(overrides_file) if overrides_file.exists() else dict(expected or {})
    records = read_metrics(path / METRICS) if (path / METRICS).exists() else []
    summary_file = path / SUMMARY
    summary = read_json(summary_file) if summary_file.exists() else {}
    status = str(summary.get("status", COMPLETED)) if summary else FAILED
    values = summary_values(summary) if status == COMPLETED else {}
    if status == COMPLETED and (path / GAN_EVALUATION).exists():  # `fl-privacy gan-eval` over the run
        evaluation = read_json(path / GAN_EVALUATION)
        values.update(flatten_numbers({k: evaluation[k] for k in ("baseline", "final")}, "gan_eval"))
    if status != COMPLETED and records:  # how far it got
        last = records[-1]
        values = {"accuracy": last["central"].get("accuracy"), "loss": last["central"].get("loss"),
                  "rounds": last["round"]}
        values = {k: v for k, v in values.items() if v is not None}
    images = sorted({image for pattern in JOB_IMAGE_PATTERNS for image in path.glob(pattern)})
    return Job(name, path, status, overrides, values, records, images)


def expected_jobs(multirun_yaml: Path) -> list[dict[str, str]]:
    """The overrides of every job of the sweep in `multirun.yaml`, in job order."""
    config = OmegaConf.load(multirun_yaml)
    if isinstance(config, ListConfig):
        raise RunFileError(f"{multirun_yaml} is not a Hydra multirun config")
    return [parse_overrides(job) for job in sweep_overrides(config)]


def find_jobs(root: Path) -> list[Job]:
    """The jobs under `root`: a multirun (numbered job folders, expected ones included), a single run,
    or a folder of runs."""
    root = Path(root)
    if not root.is_dir():
        raise RunFileError(f"{root} is not a directory")
    if (root / SWEEP_FILE).exists():
        numbered = {int(p.name): p for p in root.iterdir() if p.is_dir() and p.name.isdigit()}
        try:
            expected = expected_jobs(root / SWEEP_FILE)
        except Exception as error:  # an unusual sweeper: report the folders that exist
            log.warning("could not expand the sweep in %s (%s); reporting existing jobs only",
                        root / SWEEP_FILE, error)
            expected = []
        numbers = sorted(set(numbered) | set(range(len(expected))))
        return [read_job(str(n), numbered.get(n, root / str(n)),
                         expected[n] if n < len(expected) else None) for n in numbers]
    if any((root / marker).exists() for marker in (SUMMARY, METRICS, HYDRA_DIR)):
        return [read_job(root.name, root)]
    runs = sorted((p for p in root.iterdir() if p.is_dir() and Path(p.name) != REPORT_DIR
                   and ((p / HYDRA_DIR).exists() or (p / SUMMARY).exists())), key=lambda p: p.name)
    if not runs:
        raise RunFileError(f"{root} holds no runs (no summary.json, metrics.jsonl, .hydra/ or multirun.yaml "
                           "in it or in its subfolders)")
    return [read_job(p.name, p) for p in runs]


def varying_overrides(jobs: list[Job]) -> list[str]:
    """Override keys whose value differs between jobs (the swept keys), in first-seen order."""
    keys = list(dict.fromkeys(key for job in jobs for key in job.overrides))
    return [key for key in keys if len({job.overrides.get(key) for job in jobs}) > 1]


def first_match(patterns: tuple[str, ...], columns: list[str]) -> str | None:
    """The first column matching the first pattern that matches any (fnmatch)."""
    for pattern in patterns:
        matches = fnmatch.filter(columns, pattern)
        if matches:
            return sorted(matches)[0]
    return None
