"""Ray for the lab's simulations: started in the main thread, and in a sweep kept, with its client actors,
from one job to the next (one Ray per sweep).

Flower's Ray backend builds a fresh pool of client actors for every simulation and shuts Ray down at the
end; it has no option to keep either. Inside a multirun (the Hydra callback calls `begin_sweep`) and with
`simulation.reuse_ray`, `ray_for_job` swaps in `_KeptActorsBackend` for the job, which takes its actors
from the pool kept here and leaves them and Ray running afterwards; `end_sweep` shuts both down. A job
still gets a fresh federation state: Flower builds new node contexts for every run, and the actors keep
only per-process caches keyed on the settings that decide them (`data.federation.cached_federation`).
A job that fails takes Ray and the actors down with it; the next job starts them again.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

from fl_privacy.config.schema import SimulationSettings
from fl_privacy.devices import client_gpu_share

log = logging.getLogger(__name__)

REACHABLE_SECONDS = 5.0
# Ray gives its local node a fixed 30 s to register; on a busy machine a second try usually makes it.
STARTUP_TIMEOUT, START_ATTEMPTS = "timed out during startup", 2


class RayStartError(RuntimeError):
    """Ray could not be started or joined; the message says why."""


def backend_config(simulation: SimulationSettings, device: str = "cpu") -> dict:
    """Flower's Ray backend config: client resources (a GPU share when `device` is CUDA) and ray.init
    arguments from `simulation`.

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
    resources = simulation.client_resources
    gpus = client_gpu_share(device, resources.num_gpus, resources.num_cpus,
                            simulation.num_cpus or os.cpu_count() or 1)
    return {"client_resources": {"num_cpus": resources.num_cpus, "num_gpus": gpus}, "init_args": init_args}


def _init_args(simulation: SimulationSettings, verbose: bool) -> dict:
    """`ray.init`'s arguments: the backend config's, Ray's own logging by `verbose`, a local node on
    127.0.0.1. The actors' output reaches the terminal only when `verbose` (`log.level=debug`)."""
    init_args = {**backend_config(simulation)["init_args"], "log_to_driver": verbose,
                 "logging_level": logging.DEBUG if verbose else logging.WARNING}
    if simulation.ray_address is None:
        init_args["_node_ip_address"] = "127.0.0.1"
    return init_args


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


class _OwnSessionPopen(subprocess.Popen):
    """Ray's process launcher with every process in a session of its own."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **{**kwargs, "start_new_session": True})


@contextmanager
def _ray_processes_out_of_the_process_group() -> Iterator[None]:
    """Start Ray's processes (GCS, raylet, and through the raylet the workers) outside the driver's process
    group, and keep the driver's own SIGTERM handler (`ray.init` replaces it).

    A terminal's Ctrl-C, `timeout`, SLURM and Kubernetes signal the whole process group. Inside the group,
    Ray's processes die first (SIGTERM) or ignore it (SIGINT); the driver's core worker then aborts (SIGABRT)
    before the lab can record the run as interrupted, and actors are left behind. Outside it, only the
    driver hears the signal and shuts Ray down in order (`shutdown`); Ray's fate sharing still ends its
    processes if the driver is killed outright. Ray has no option for this, so its launcher is patched for
    the duration of `ray.init`, as `ray_for_job` patches Flower's backend."""
    from ray._private import services

    handler = signal.getsignal(signal.SIGTERM)
    try:
        with mock.patch.object(services, "ConsolePopen", _OwnSessionPopen):
            yield
    finally:
        if threading.current_thread() is threading.main_thread() and handler is not None:
            signal.signal(signal.SIGTERM, handler)


def start_ray(simulation: SimulationSettings, init_args: dict) -> None:
    """Start a local Ray or join `simulation.ray_address`, here in the main thread: inside Flower's engine a
    failing start leaves the server waiting for nodes that never come, here it ends the run at once with
    Ray's reason (`RayStartError`)."""
    import ray

    if simulation.ray_address is not None:
        _check_reachable(simulation.ray_address)
    # As Flower's Ray backend does: workers import the package from the driver's path.
    pythonpath = os.pathsep.join(filter(None, [*sys.path, os.environ.get("PYTHONPATH")]))
    os.environ["PYTHONPATH"] = pythonpath
    # Ray's advice about a future default for GPU visibility is not about this run.
    warnings.filterwarnings("ignore", message="Tip: In future versions of Ray", category=FutureWarning)
    for attempt in range(1, START_ATTEMPTS + 1):
        try:
            with _ray_processes_out_of_the_process_group():
                ray.init(runtime_env={"env_vars": {"PYTHONPATH": pythonpath}}, **init_args)
            return
        except Exception as error:
            first_line = str(error).splitlines()[0]
            if attempt == START_ATTEMPTS or STARTUP_TIMEOUT not in first_line:
                raise RayStartError(f"Ray did not start: {type(error).__name__}: {first_line}") from error
            log.warning("Ray did not start in time (a busy machine?); trying again")
            ray.shutdown()


@dataclass
class _Runtime:
    """What this process keeps between the jobs of a sweep."""

    in_sweep: bool = False
    init_args: dict | None = None  # the arguments the running Ray was started with
    pool: Any = None  # Flower's BasicActorPool of client actors
    pool_resources: dict = field(default_factory=dict)

    def actor_pool(self, resources: dict, actor_kwargs: dict) -> Any:
        """The kept actors when they were made with `resources`, else a new pool (the old one ended)."""
        from flwr.simulation.ray_transport.ray_actor import BasicActorPool, ClientAppActor

        if self.pool is not None and self.pool_resources == resources:
            return self.pool
        self.end_actors()
        self.pool = BasicActorPool(actor_type=ClientAppActor, client_resources=resources,
                                   actor_kwargs=actor_kwargs)
        self.pool.add_actors_to_pool(self.pool.actors_capacity)
        self.pool_resources = dict(resources)
        return self.pool

    def keep_or_end(self, pool: Any) -> None:
        """After a job: keep the actors when all are back idle, else end them."""
        if pool is not self.pool or len(pool.pool) != pool.num_actors:
            self.end_actors()

    def end_actors(self) -> None:
        if self.pool is not None:
            self.pool.terminate_all_actors()
        self.pool, self.pool_resources = None, {}

    def shutdown(self) -> None:
        import ray

        self.end_actors()
        if ray.is_initialized():
            ray.shutdown()
        self.init_args = None


_RUNTIME = _Runtime()


def _kept_actors_backend() -> type:
    """Flower's RayBackend with the actor pool taken from, and handed back to, `_RUNTIME`."""
    from flwr.server.superlink.fleet.vce.backend.raybackend import RayBackend

    class _KeptActorsBackend(RayBackend):
        def build(self, app_fn: Any) -> None:
            self.pool = _RUNTIME.actor_pool(dict(self.client_resources), dict(self.actor_kwargs))
            self.app_fn = app_fn

        def terminate(self) -> None:
            _RUNTIME.keep_or_end(self.pool)

    return _KeptActorsBackend


def begin_sweep() -> None:
    """From now on jobs with `simulation.reuse_ray` keep Ray and the client actors for the next job."""
    _RUNTIME.in_sweep = True


def end_sweep() -> None:
    """Shut down what the sweep kept."""
    _RUNTIME.in_sweep = False
    _RUNTIME.shutdown()


def shutdown() -> None:
    """Shut down Ray and the client actors this process started or kept (a stopped run, a sweep's end)."""
    end_sweep()


@contextmanager
def ray_for_job(simulation: SimulationSettings, verbose: bool) -> Iterator[None]:
    """Ray for one simulation: the sweep's kept Ray when it was started with the same arguments, else a new
    one. Outside a sweep (or with `simulation.reuse_ray=false`) it is shut down at the end, as always."""
    import ray
    from flwr.server.superlink.fleet.vce.backend import raybackend

    keep = _RUNTIME.in_sweep and simulation.reuse_ray
    init_args = _init_args(simulation, verbose)
    if ray.is_initialized() and _RUNTIME.init_args != init_args:
        _RUNTIME.shutdown()
    if ray.is_initialized():
        log.info("Ray and its client actors kept from the sweep's previous job")
    else:
        start_ray(simulation, init_args)
        _RUNTIME.init_args = init_args
    try:
        if keep:  # Flower looks its backend class up here for every simulation; no public hook
            with mock.patch.object(raybackend, "RayBackend", _kept_actors_backend()):
                yield
        else:
            yield
    except BaseException:
        _RUNTIME.shutdown()
        raise
    if not keep:
        _RUNTIME.shutdown()
