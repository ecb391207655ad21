"""Process-level setup for a simulation: telemetry opt-in, quiet logs, Ray backend config."""

from __future__ import annotations

import logging
import os

from omegaconf import DictConfig

log = logging.getLogger(__name__)

TELEMETRY_VARIABLES = ("FLWR_TELEMETRY_ENABLED", "RAY_USAGE_STATS_ENABLED")


def configure_telemetry(opt_in: bool) -> None:
    """Flower and Ray usage telemetry stay off unless the user opts in (`telemetry=true`)."""
    for name in TELEMETRY_VARIABLES:
        os.environ[name] = "1" if opt_in else "0"


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


def backend_config(cfg: DictConfig) -> dict:
    """Flower's Ray backend config: client resources and ray.init arguments from `simulation`.

    `simulation.ray_address` null starts a local Ray; an address (`HOST:PORT`, `auto`) joins that
    running cluster, whose size and dashboard are then the cluster's own."""
    sim = cfg.simulation
    address = sim.get("ray_address")
    if address is not None:
        init_args: dict = {"address": str(address)}
    else:
        init_args = {"include_dashboard": bool(sim.dashboard)}
        if sim.dashboard:
            init_args.update(dashboard_host="127.0.0.1", dashboard_port=int(sim.dashboard_port))
        if sim.num_cpus is not None:
            init_args["num_cpus"] = int(sim.num_cpus)
    return {
        "client_resources": {"num_cpus": float(sim.client_resources.num_cpus),
                             "num_gpus": float(sim.client_resources.num_gpus)},
        "init_args": init_args,
    }
