"""`flwr run .`: the ServerApp and ClientApp of `python -m fl_privacy.run`, configured by Flower's run config.

`[tool.flwr.app.config]` in pyproject.toml carries `experiment` (a preset in conf/experiment, "" for
none) and `overrides` (Hydra overrides separated by spaces), e.g.
`flwr run . --run-config "overrides='strategy.num_rounds=2'"`. Both sides compose the Hydra config from the
package's conf/ and validate it; the server writes the usual files into `<output-dir>/<run id>`
(default `outputs/flwr/<run id>`).
"""

from __future__ import annotations

import functools
import logging
import shlex
from pathlib import Path

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from fl_privacy.apps.client_app import client_app_from
from fl_privacy.apps.server_app import run_server
from fl_privacy.config import Settings, compose_settings
from fl_privacy.errors import ConfigError
from fl_privacy.lab.channels.side_channels import RunHooks
from fl_privacy.lab.runtime.telemetry import configure_telemetry
from fl_privacy.run_layout import RUN_LOG

log = logging.getLogger(__name__)

def hydra_overrides(run_config: dict) -> list[str]:
    """The Hydra overrides that Flower's run config stands for."""
    experiment = str(run_config.get("experiment", "")).strip()
    overrides = shlex.split(str(run_config.get("overrides", "")))
    return ([f"+experiment={experiment}"] if experiment else []) + overrides


@functools.lru_cache(maxsize=4)
def settings_for(overrides: tuple[str, ...]) -> Settings:
    """The validated settings `python -m fl_privacy.run OVERRIDES` would run (cached per process)."""
    return compose_settings(overrides)


def run_dir_of(context: Context) -> Path:
    return Path(str(context.run_config.get("output-dir", "outputs/flwr"))).resolve() / str(context.run_id)


def log_to_run_dir(run_dir: Path) -> None:
    """Outside Hydra nothing configures logging: send the package's INFO lines to Flower's console handler
    (streamed by `flwr run --stream`) and to `run_dir/run.log`."""
    run_dir.mkdir(parents=True, exist_ok=True)
    file_handler = logging.FileHandler(run_dir / RUN_LOG)
    file_handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
    for name in ("fl_privacy", "strategies"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.INFO)
        for handler in [*logging.getLogger("flwr").handlers, file_handler]:
            logger.addHandler(handler)


def _settings(context: Context) -> Settings:
    return settings_for(tuple(hydra_overrides(dict(context.run_config))))


def _client_settings(context: Context) -> Settings:
    settings = _settings(context)
    partitions = int(context.node_config.get("num-partitions", settings.simulation.num_clients))
    if partitions != settings.simulation.num_clients:
        raise ConfigError("simulation.num_clients", settings.simulation.num_clients,
                          f"the federation has {partitions} supernodes (options.num-supernodes); "
                          "set both to the same number")
    return settings


def _hooks(context: Context) -> RunHooks:
    return RunHooks.for_run(_settings(context), run_dir_of(context))


server_app = ServerApp()
client_app = client_app_from(_client_settings, _hooks)


@server_app.main()
def main(grid: Grid, context: Context) -> None:
    """The run sequence of `python -m fl_privacy.run` (`lab.experiment.run_experiment`), with the rounds run
    by this ServerApp on Flower's grid instead of an in-process simulation."""
    from fl_privacy.lab.experiment import RoundsJob, run_experiment
    from fl_privacy.lab.preflight import check_settings

    settings = _settings(context)
    configure_telemetry(settings.telemetry)
    run_dir = run_dir_of(context)
    log_to_run_dir(run_dir)
    log.info("flwr run: %s -> %s", " ".join(hydra_overrides(dict(context.run_config))) or "defaults", run_dir)
    check_settings(settings)

    def rounds_on_the_grid(job: RoundsJob) -> None:
        run_server(grid, job.settings, job.federation, job.run_dir, job.recorder, job.checkpoints, job.resume)

    # each flwr run has a new folder: nothing to resume
    run_experiment(settings, run_dir, rounds_on_the_grid, dir_key="output-dir")
