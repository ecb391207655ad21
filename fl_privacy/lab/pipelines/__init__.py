"""The post-run pipelines a run asks for (each an attack step, then a scoring step), in one place."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from pathlib import Path

from fl_privacy.config.schema import Settings

# summary.json section -> (is it asked for, the pipeline as "module:function" of this package, imported only
# when asked: each pulls in its own attack and evaluation code)
PIPELINES: dict[str, tuple[Callable[[Settings], bool], str]] = {
    "attack": (lambda s: s.attack.gradient_inversion.after_run, "inversion_pipeline:invert_and_score"),
    "representation_inversion": (lambda s: s.attack.representation_inversion.after_run,
                                 "representation_pipeline:run_representation_inversion"),
    "mia": (lambda s: s.attack.membership.after_run, "audit_pipeline:audit_run"),
    "mia_updates": (lambda s: s.attack.membership.update_attack.after_run, "update_audit:audit_updates"),
    "dp_audit": (lambda s: s.attack.dp_audit.after_run, "dp_audit_pipeline:run_dp_audit"),
    "dp_audit_fl": (lambda s: s.attack.dp_audit_fl.after_run, "fl_audit_pipeline:run_fl_audit"),
}


def run_after_run_pipelines(settings: Settings, run_dir: Path) -> Iterator[tuple[str, dict]]:
    """(summary section, result) of each pipeline the settings ask for, in order, as each finishes."""
    for section, (asked, target) in PIPELINES.items():
        if asked(settings):
            module, function = target.split(":")
            pipeline = getattr(importlib.import_module(f"{__name__}.{module}"), function)
            yield section, pipeline(Path(run_dir), settings)
