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
import time
from pathlib import Path

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from fl_privacy.apps.client_app import client_app_from
from fl_privacy.apps.server_app import run_server
from fl_privacy.config import Settings, compose_settings
from fl_privacy.errors import ConfigError
from fl_privacy.lab.side_channels import RunHooks
from fl_privacy.lab.telemetry import configure_telemetry

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
    file_handler = logging.FileHandler(run_dir / "run.log")
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
    """Compose the experiment, build the data and the lab's monitors, run the strategy, write the run's
    files."""
    from fl_privacy.data.federation import build_federation
    from fl_privacy.lab.checkpoints import Checkpointer
    from fl_privacy.lab.experiment import finish_run, prepare_run
    from fl_privacy.lab.preflight import check_before_run, check_settings
    from fl_privacy.lab.run_dir import check_run_dir
    from fl_privacy.lab.summary import recorded_status

    settings = _settings(context)
    configure_telemetry(settings.telemetry)
    run_dir = run_dir_of(context)
    log_to_run_dir(run_dir)
    log.info("flwr run: %s -> %s", " ".join(hydra_overrides(dict(context.run_config))) or "defaults", run_dir)
    started = time.monotonic()
    check_settings(settings)
    check_run_dir(run_dir, settings, "output-dir")  # each flwr run has a new folder: nothing to resume
    with recorded_status(run_dir, settings) as summary:
        federation = build_federation(settings)
        check_before_run(settings, federation)
        _, recorder, finishers = prepare_run(settings, federation, run_dir)
        checkpoints = Checkpointer(run_dir, settings.checkpoint_every, recorder.monitors_state)
        run_server(grid, settings, federation, run_dir, recorder, checkpoints)
        finish_run(settings, run_dir, summary, recorder.metrics_log.records, finishers, started,
                   recorder.tracker)
