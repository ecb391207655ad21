"""Entry point: `python -m fl_privacy.run +experiment=NAME key=value ...` (Hydra).

Compose (Hydra) -> validate (one line naming the key, exit 2, before anything heavy) -> hand the typed
settings to the lab, which writes metrics.jsonl, summary.json and final_model.pt into Hydra's run directory.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from fl_privacy.config import CONF_DIR, load_settings, register_schema
from fl_privacy.errors import ConfigError, DataNotFoundError
from fl_privacy.lab.telemetry import configure_telemetry

log = logging.getLogger("fl_privacy")

register_schema()


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    """Hydra entry: a config or data error ends the job with one line and exit code 2."""
    try:
        settings = load_settings(cfg)
        configure_telemetry(settings.telemetry)  # before anything imports Flower
        from fl_privacy.lab.experiment import run_experiment
        from fl_privacy.lab.preflight import check_settings

        check_settings(settings)
        run_experiment(settings, Path(HydraConfig.get().runtime.output_dir))
    except (ConfigError, DataNotFoundError) as error:
        log.error("config error: %s", error)
        sys.exit(2)


if __name__ == "__main__":
    main()
