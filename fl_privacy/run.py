"""Entry point: `python -m fl_privacy.run +experiment=NAME key=value ...` (Hydra).

Compose (Hydra) -> validate every job and its run directory before Hydra writes anything
(`fl_privacy.launch_checks`, one line naming the key, exit 2) -> hand the typed settings to the lab, which
writes metrics.jsonl, summary.json and final_model.pt into Hydra's run directory. A run that fails exits 1
(its summary.json says `failed`); in a multirun the other jobs still run and the sweep exits 1 at the end.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from fl_privacy.config import CONF_DIR, register_schema
from fl_privacy.console import show_everything
from fl_privacy.errors import ConfigError, DataNotFoundError
from fl_privacy.launch_checks import validated_settings

log = logging.getLogger("fl_privacy")

register_schema()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _exit_stopped() -> None:
    """End a stopped run's process now (exit 130), its status already recorded: shut Ray down, flush the
    logs, and exit without waiting for Flower's simulation threads, which a stop leaves running."""
    from fl_privacy.lab.runtime import ray_runtime

    try:
        ray_runtime.shutdown()
    finally:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    """Hydra entry: a config or data error ends the job with one line and exit code 2, a failed run with
    exit code 1 (in a multirun: after the other jobs)."""
    signal.signal(signal.SIGTERM, _interrupt)  # a terminated run ends `interrupted`, not silently
    signal.signal(signal.SIGINT, _interrupt)  # Ctrl-C, also when a parent (e.g. a test) ignored SIGINT
    in_sweep = HydraConfig.get().mode == RunMode.MULTIRUN
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        settings = validated_settings(cfg, run_dir)  # validated once, by the launch check (telemetry set)
        if settings.log.level == "debug":
            show_everything()
        from fl_privacy.lab.experiment import run_experiment

        run_experiment(settings, run_dir)
    except (ConfigError, DataNotFoundError) as error:
        log.error("config error: %s", error)
        if not in_sweep:
            sys.exit(2)
    except (KeyboardInterrupt, SystemExit):  # Ctrl-C, or SIGTERM (to this process or its whole group)
        log.error("interrupted")
        _exit_stopped()
    except Exception as error:
        first_line = (str(error).splitlines() or [""])[0]
        log.error("run failed: %s: %s", type(error).__name__, first_line, exc_info=not _expected(error))
        if not in_sweep:
            sys.exit(1)


def _expected(error: Exception) -> bool:
    """Failures the lab names itself (one line is enough): Ray did not start, a round failed."""
    from fl_privacy.errors import RoundFailed
    from fl_privacy.lab.runtime.ray_runtime import RayStartError

    return isinstance(error, RayStartError | RoundFailed)


if __name__ == "__main__":
    main()
