"""The post-run pipelines a run asks for (each an attack step, then a scoring step), in one place."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from fl_privacy.config.schema import Settings

# summary.json section -> (is it asked for, the pipeline)
Pipeline = Callable[[Path, Settings], dict]


def _gradient_inversion(run_dir: Path, settings: Settings) -> dict:
    from fl_privacy.lab.pipelines.inversion_pipeline import invert_and_score

    return invert_and_score(run_dir, settings)


def _representation_inversion(run_dir: Path, settings: Settings) -> dict:
    from fl_privacy.lab.pipelines.representation_pipeline import run_representation_inversion

    return run_representation_inversion(run_dir, settings)


def _membership_audit(run_dir: Path, settings: Settings) -> dict:
    from fl_privacy.lab.pipelines.audit_pipeline import audit_run

    return audit_run(run_dir, settings)


def _update_audit(run_dir: Path, settings: Settings) -> dict:
    from fl_privacy.lab.pipelines.update_audit import audit_updates

    return audit_updates(run_dir, settings)


def _dp_audit(run_dir: Path, settings: Settings) -> dict:
    from fl_privacy.lab.pipelines.dp_audit_pipeline import run_dp_audit

    return run_dp_audit(run_dir, settings)


def _dp_audit_fl(run_dir: Path, settings: Settings) -> dict:
    from fl_privacy.lab.pipelines.fl_audit_pipeline import run_fl_audit

    return run_fl_audit(run_dir, settings)


PIPELINES: dict[str, tuple[Callable[[Settings], bool], Pipeline]] = {
    "attack": (lambda s: s.attack.gradient_inversion.after_run, _gradient_inversion),
    "representation_inversion": (lambda s: s.attack.representation_inversion.after_run,
                                 _representation_inversion),
    "mia": (lambda s: s.attack.membership.after_run, _membership_audit),
    "mia_updates": (lambda s: s.attack.membership.update_attack.after_run, _update_audit),
    "dp_audit": (lambda s: s.attack.dp_audit.after_run, _dp_audit),
    "dp_audit_fl": (lambda s: s.attack.dp_audit_fl.after_run, _dp_audit_fl),
}


def run_after_run_pipelines(settings: Settings, run_dir: Path) -> Iterator[tuple[str, dict]]:
    """(summary section, result) of each pipeline the settings ask for, in order, as each finishes."""
    for section, (asked, pipeline) in PIPELINES.items():
        if asked(settings):
            yield section, pipeline(run_dir, settings)
