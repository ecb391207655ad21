"""What summary.json says about a run besides its attacks: status, settings, software, final metrics,
privacy spent."""

from __future__ import annotations

import math
import platform
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from fl_privacy.config.schema import Settings
from fl_privacy.lab.runtime.telemetry import telemetry_environment
from fl_privacy.privacy_record import PrivacySummary
from fl_privacy.results import COMPLETED, FAILED, INTERRUPTED, RUNNING, write_json
from fl_privacy.run_layout import SUMMARY

VERSIONED_PACKAGES = ("fl-privacy", "flwr", "ray", "torch", "torchvision", "opacus", "hydra-core", "numpy",
                      "pydantic")


def package_versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in VERSIONED_PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def final_metrics(records: list[dict]) -> dict:
    """Summary numbers from the per-round records."""
    if not records:
        return {}
    accuracies = [r["central"].get("accuracy") for r in records if r["central"]]
    return {"rounds": records[-1]["round"], "final": records[-1]["central"],
            "best_accuracy": max(accuracies) if accuracies else None,
            "final_train": records[-1]["train"], "final_evaluate": records[-1]["evaluate"]}


def failure_summary(records: list[dict]) -> dict:
    """Failed client replies over the run: how many, and per round which partitions (from metrics.jsonl)."""
    per_round = {str(r["round"]): {phase: [f["partition"] for f in failed]
                                   for phase, failed in r.get("failures", {}).items() if failed}
                 for r in records}
    per_round = {round_: phases for round_, phases in per_round.items() if phases}
    return {"failed_replies": sum(len(p) for phases in per_round.values() for p in phases.values()),
            "rounds": per_round}


def divergence_round(records: list[dict]) -> int | None:
    """The first round whose central loss is not finite (the federation diverged), or None. metrics.jsonl
    holds a non-finite loss as null."""
    for record in records:
        central = record.get("central", {})
        if "loss" in central and (central["loss"] is None or not math.isfinite(central["loss"])):
            return record["round"]
    return None


def privacy_summary(settings: Settings, records: list[dict]) -> dict:
    """The privacy spent by the end of the run: each DP client's cumulative ε and the maximum at
    `defense.dp.delta`, and central DP's client-level ε (its own delta); empty without DP."""
    return PrivacySummary.from_round(records[-1] if records else {}, settings.defense.dp.delta).to_json()


def run_header(settings: Settings) -> dict:
    """What every summary.json starts with: the settings and the software that ran them."""
    return {"config": settings.model_dump(mode="json"), "versions": package_versions(),
            "telemetry_environment": telemetry_environment()}


class SummaryFile:
    """summary.json of a run: written at the start with `status: running`, rewritten as sections arrive."""

    def __init__(self, run_dir: Path, settings: Settings) -> None:
        self.path = Path(run_dir) / SUMMARY
        self.content: dict = {**run_header(settings), "status": RUNNING}
        self.write()

    def update(self, **sections) -> None:
        self.content.update(sections)
        self.write()

    def write(self) -> None:
        write_json(self.path, self.content)


@contextmanager
def recorded_status(run_dir: Path, settings: Settings) -> Iterator[SummaryFile]:
    """The run's summary.json, whose status ends `completed`, `interrupted` (Ctrl-C, SIGTERM) or `failed`
    (with the error), so a run that did not finish never looks like one that did. (Ray's driver turns
    SIGTERM into `SystemExit`.)"""
    summary = SummaryFile(run_dir, settings)
    try:
        yield summary
    except (KeyboardInterrupt, SystemExit):
        summary.update(status=INTERRUPTED)
        raise
    except BaseException as error:
        summary.update(status=FAILED, error=f"{type(error).__name__}: {error}")
        raise
    summary.update(status=COMPLETED)
