"""What summary.json says about a run besides its attacks: settings, software, final metrics, privacy
spent."""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version

from fl_privacy.config.schema import Settings
from fl_privacy.lab.telemetry import telemetry_environment

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


def privacy_summary(settings: Settings, records: list[dict]) -> dict:
    """The privacy spent by the end of the run: each DP client's cumulative ε and the maximum at
    `defense.dp.delta`, and central DP's client-level ε (its own delta); empty without DP."""
    last = records[-1] if records else {}
    summary: dict = {}
    if "privacy" in last:
        summary = {"delta": settings.defense.dp.delta, **last["privacy"]}
    if "central_dp" in last:
        summary["central"] = last["central_dp"]
        summary.setdefault("max_epsilon", last["central_dp"]["epsilon"])
    return summary


def run_header(settings: Settings) -> dict:
    """What every summary.json starts with: the settings and the software that ran them."""
    return {"config": settings.model_dump(mode="json"), "versions": package_versions(),
            "telemetry_environment": telemetry_environment()}
