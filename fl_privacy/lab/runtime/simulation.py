"""Flower's simulation engine on Ray for one run, with quiet logs.

Importing this module imports Flower: the entry point sets the telemetry switches before (`lab.telemetry`)."""

from __future__ import annotations

import logging
from pathlib import Path

from flwr.simulation import run_simulation

from fl_privacy.apps.client_app import build_client_app
from fl_privacy.apps.server_app import ResumePoint, RoundCheckpoints, RoundListener, build_server_app
from fl_privacy.config.schema import Settings
from fl_privacy.data.federation import Federation
from fl_privacy.lab.channels.side_channels import RunHooks
from fl_privacy.lab.runtime import ray_runtime

log = logging.getLogger(__name__)

class _DropRunSimulationDeprecation(logging.Filter):
    """`run_simulation` is the only in-process path for a Hydra job; its deprecation notice
    (Flower recommends `flwr run`) is expected here, so it is replaced by one INFO line."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return "run_simulation" not in message and "DEPRECATED FEATURE" not in message


def route_flower_logs() -> None:
    """Send Flower's INFO logs through Hydra's handlers (console + run.log) once, not twice,
    and replace the expected `run_simulation` deprecation notice with one INFO line."""
    from flwr.common.logger import ConsoleHandler

    flwr_logger = logging.getLogger("flwr")
    for handler in list(flwr_logger.handlers):
        if isinstance(handler, ConsoleHandler):
            flwr_logger.removeHandler(handler)
    flwr_logger.setLevel(logging.INFO)
    flwr_logger.addFilter(_DropRunSimulationDeprecation())
    log.info("Running Flower's simulation engine in-process via run_simulation "
             "(the apps also run under `flwr run .`).")


def simulate(settings: Settings, federation: Federation, run_dir: Path, hooks: RunHooks,
             on_round: RoundListener, checkpoints: RoundCheckpoints | None = None,
             resume: ResumePoint | None = None) -> None:
    """Run the federation's ServerApp and ClientApps in Flower's simulation engine on Ray (started here,
    or kept from the sweep's previous job, see `ray_runtime`)."""
    if settings.simulation.dashboard:
        # on the terminal (the package's top logger): the user needs the address
        logging.getLogger("fl_privacy").info("Ray dashboard: http://127.0.0.1:%d",
                                             settings.simulation.dashboard_port)
    route_flower_logs()
    server_app = build_server_app(settings, federation, run_dir, on_round, checkpoints, resume)
    with ray_runtime.ray_for_job(settings.simulation, verbose=settings.log.level == "debug"):
        run_simulation(server_app=server_app,
                       client_app=build_client_app(settings, hooks),
                       num_supernodes=settings.simulation.num_clients,
                       backend_config=ray_runtime.backend_config(settings.simulation, settings.device))
