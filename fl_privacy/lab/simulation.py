"""Flower's simulation engine on Ray for one run: quiet logs, the Ray backend config.

Importing this module imports Flower: the entry point sets the telemetry switches before (`lab.telemetry`)."""

from __future__ import annotations

import logging
import os
import socket
import sys
import warnings
from pathlib import Path

from flwr.simulation import run_simulation

from fl_privacy.apps.client_app import build_client_app
from fl_privacy.apps.server_app import ResumePoint, RoundCheckpoints, RoundListener, build_server_app
from fl_privacy.config.schema import Settings, SimulationSettings
from fl_privacy.data.federation import Federation
from fl_privacy.lab.side_channels import RunHooks

log = logging.getLogger(__name__)

REACHABLE_SECONDS = 5.0


class RayStartError(RuntimeError):
    """Ray could not be started or joined; the message says why."""

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


def backend_config(simulation: SimulationSettings) -> dict:
    """Flower's Ray backend config: client resources and ray.init arguments from `simulation`.

    `simulation.ray_address` null starts a local Ray; an address (`HOST:PORT`, `auto`) joins that
    running cluster, whose size and dashboard are then the cluster's own."""
    if simulation.ray_address is not None:
        init_args: dict = {"address": simulation.ray_address}
    else:
        init_args = {"include_dashboard": simulation.dashboard}
        if simulation.dashboard:
            init_args.update(dashboard_host="127.0.0.1", dashboard_port=simulation.dashboard_port)
        if simulation.num_cpus is not None:
            init_args["num_cpus"] = simulation.num_cpus
    return {"client_resources": {"num_cpus": simulation.client_resources.num_cpus,
                                 "num_gpus": simulation.client_resources.num_gpus},
            "init_args": init_args}


def _check_reachable(address: str) -> None:
    """A `HOST:PORT` cluster address must accept connections (Ray itself retries for minutes)."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        return  # `auto` and Ray's other address forms: Ray reports those quickly itself
    try:
        socket.create_connection((host, int(port)), timeout=REACHABLE_SECONDS).close()
    except OSError as error:
        raise RayStartError(f"simulation.ray_address={address}: no Ray cluster answers there ({error})") \
            from None


def start_ray(simulation: SimulationSettings, verbose: bool) -> None:
    """Start a local Ray (its node on 127.0.0.1) or join `simulation.ray_address`, here in the main thread:
    inside Flower's engine a failing start leaves the server waiting for nodes that never come, here it
    ends the run at once with Ray's reason (`RayStartError`). The actors' own output reaches the terminal
    only when `verbose` (`log.level=debug`); Ray keeps it in its session logs."""
    import ray

    init_args = {**backend_config(simulation)["init_args"], "log_to_driver": verbose,
                 "logging_level": logging.DEBUG if verbose else logging.WARNING}
    if simulation.ray_address is None:
        init_args["_node_ip_address"] = "127.0.0.1"
    else:
        _check_reachable(simulation.ray_address)
    # As Flower's Ray backend does: workers import the package from the driver's path.
    pythonpath = os.pathsep.join(filter(None, [*sys.path, os.environ.get("PYTHONPATH")]))
    os.environ["PYTHONPATH"] = pythonpath
    # Ray's advice about a future default for GPU visibility is not about this run.
    warnings.filterwarnings("ignore", message="Tip: In future versions of Ray", category=FutureWarning)
    try:
        ray.init(runtime_env={"env_vars": {"PYTHONPATH": pythonpath}}, **init_args)
    except Exception as error:
        raise RayStartError(f"Ray did not start: {type(error).__name__}: {str(error).splitlines()[0]}") \
            from error


def simulate(settings: Settings, federation: Federation, run_dir: Path, hooks: RunHooks,
             on_round: RoundListener, checkpoints: RoundCheckpoints | None = None,
             resume: ResumePoint | None = None) -> None:
    """Run the federation's ServerApp and ClientApps in Flower's simulation engine on Ray."""
    import ray

    if settings.simulation.dashboard:
        # on the terminal (the package's top logger): the user needs the address
        logging.getLogger("fl_privacy").info("Ray dashboard: http://127.0.0.1:%d",
                                             settings.simulation.dashboard_port)
    route_flower_logs()
    server_app = build_server_app(settings, federation, run_dir, on_round, checkpoints, resume)
    start_ray(settings.simulation, verbose=settings.log.level == "debug")
    try:
        run_simulation(server_app=server_app,
                       client_app=build_client_app(settings, hooks),
                       num_supernodes=settings.simulation.num_clients,
                       backend_config=backend_config(settings.simulation))
    finally:
        if ray.is_initialized():
            ray.shutdown()
