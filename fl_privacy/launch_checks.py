"""Checks Hydra runs before it writes anything (a callback, see conf/config.yaml): every job's settings
and run directory, so a bad input or a reused directory ends with one line per bad job and exit 2,
before any job starts and before Hydra touches an earlier run's `.hydra/`. A multirun's jobs share one
Ray (`lab.ray_runtime`), shut down at its end, where any job that did not complete makes the exit code 1
(the other jobs still ran)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hydra.core.global_hydra import GlobalHydra
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict

from fl_privacy.config import Settings, load_settings
from fl_privacy.config.sweeps import sweep_overrides
from fl_privacy.errors import ConfigError, DataNotFoundError
from fl_privacy.lab.runtime import ray_runtime
from fl_privacy.lab.runtime.telemetry import configure_telemetry
from fl_privacy.results import COMPLETED

# Each job's settings as validated here, by run directory: the job takes them (`validated_settings`)
# instead of validating its config a second time.
_VALIDATED: dict[Path, Settings] = {}


def checked_settings(config: DictConfig) -> Settings:
    """A job's config validated into settings, with the checks that need the code (model layers, Opacus)."""
    settings = load_settings(OmegaConf.masked_copy(config, [str(k) for k in config if k != "hydra"]))
    configure_telemetry(settings.telemetry)  # before the checks below import Flower
    from fl_privacy.lab.preflight import check_settings

    check_settings(settings)
    return settings


def job_problem(config: DictConfig, run_dir: Path, dir_key: str) -> str | None:
    """What is wrong with one job (None: nothing found before it runs)."""
    try:
        settings = checked_settings(config)
        from fl_privacy.lab.run_dir import check_run_dir

        check_run_dir(run_dir, settings, dir_key)
    except (ConfigError, DataNotFoundError) as error:
        return str(error)
    except Exception as error:  # e.g. an interpolation that does not resolve: still this job's input
        return f"{type(error).__name__}: {error}"
    _VALIDATED[Path(run_dir).resolve()] = settings
    return None


def validated_settings(config: DictConfig, run_dir: Path) -> Settings:
    """The job's settings as this callback validated them before launch (validated now when the callback
    did not see this job)."""
    return _VALIDATED.pop(Path(run_dir).resolve(), None) or checked_settings(config)


def _exit_if(problems: list[str]) -> None:
    if problems:
        for problem in problems:
            print(f"config error: {problem}", file=sys.stderr)
        sys.exit(2)


class CheckBeforeLaunch(Callback):
    """Validate a run, or every job of a multirun, before Hydra starts the first."""

    def __init__(self) -> None:
        self.job_dirs: list[Path] = []

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        problem = job_problem(config, Path(config.hydra.run.dir), "hydra.run.dir")
        _exit_if([problem] if problem else [])

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        loader = GlobalHydra.instance().config_loader()
        problems = []
        for number, overrides in enumerate(sweep_overrides(config)):
            job = loader.load_sweep_config(config, overrides)
            with open_dict(job):
                job.hydra.job.num = job.hydra.job.id = number
            job_dir = Path(job.hydra.sweep.dir) / str(job.hydra.sweep.subdir)
            self.job_dirs.append(job_dir)
            if problem := job_problem(job, job_dir, "hydra.sweep.dir"):
                problems.append(f"job {number} ({' '.join(overrides)}): {problem}")
        _exit_if(problems)
        ray_runtime.begin_sweep()

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from fl_privacy.lab.run_dir import earlier_status

        ray_runtime.end_sweep()
        statuses = {d: earlier_status(d) for d in self.job_dirs}
        unfinished = [f"{d.name}: {status or 'did not start'}" for d, status in statuses.items()
                      if status != COMPLETED]
        if unfinished:
            print(f"{len(unfinished)} of {len(self.job_dirs)} jobs did not complete "
                  f"({', '.join(unfinished)})", file=sys.stderr)
            sys.exit(1)
