"""Entry point: `python -m fl_privacy.run +experiment=NAME key=value ...` (Hydra).

Validates the composed config, builds the data, the ServerApp and the ClientApp, runs Flower's
simulation engine on Ray, and writes metrics.jsonl, summary.json and final_model.pt into
Hydra's run directory.
"""

from __future__ import annotations

import logging
import os
import platform
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from fl_privacy.config import validate
from fl_privacy.errors import ConfigError, DataNotFoundError
from fl_privacy.runtime import (
    TELEMETRY_VARIABLES,
    backend_config,
    configure_telemetry,
    route_flower_logs,
)

log = logging.getLogger("fl_privacy")

VERSIONED_PACKAGES = ("fl-privacy", "flwr", "ray", "torch", "torchvision", "opacus", "hydra-core",
                      "numpy")


def package_versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in VERSIONED_PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def final_metrics(records: list[dict]) -> dict:
    """Summary numbers from the per-round records."""
    if not records:
        return {}
    accuracies = [r["central"].get("accuracy") for r in records if r["central"]]
    return {"rounds": records[-1]["round"], "final": records[-1]["central"],
            "best_accuracy": max(accuracies) if accuracies else None,
            "final_train": records[-1]["train"], "final_evaluate": records[-1]["evaluate"]}


def privacy_summary(cfg: DictConfig, records: list[dict]) -> dict:
    """The privacy spent by the end of the run: each DP client's cumulative ε and the maximum at
    `defense.dp.delta`, and central DP's client-level ε (its own delta); empty without DP."""
    last = records[-1] if records else {}
    summary: dict = {}
    if "privacy" in last:
        summary = {"delta": float(cfg.defense.dp.delta), **last["privacy"]}
    if "central_dp" in last:
        summary["central"] = last["central_dp"]
        summary.setdefault("max_epsilon", last["central_dp"]["epsilon"])
    return summary


def run_experiment(cfg: DictConfig, run_dir: Path) -> dict:
    """Run one validated experiment and write its files into `run_dir`; returns the summary."""
    if "par_gan" in cfg:  # in-process GAN training, no Flower simulation (README: GANs and membership)
        from fl_privacy.gan_membership import run_par_gan

        return run_par_gan(cfg, run_dir)
    configure_telemetry(bool(cfg.telemetry))
    from flwr.simulation import run_simulation

    from fl_privacy.apps.client_app import build_client_app
    from fl_privacy.apps.server_app import build_server_app

    started = time.monotonic()
    federation, metrics_log, probes = prepare_run(cfg, run_dir)
    if cfg.simulation.dashboard:
        log.info("Ray dashboard: http://127.0.0.1:%d", cfg.simulation.dashboard_port)
    route_flower_logs()
    run_simulation(
        server_app=build_server_app(cfg, federation, run_dir, metrics_log, probes),
        client_app=build_client_app(cfg, run_dir),
        num_supernodes=cfg.simulation.num_clients,
        backend_config=backend_config(cfg),
    )
    return finish_run(cfg, run_dir, metrics_log, probes, started)


def prepare_run(cfg: DictConfig, run_dir: Path):
    """The server side's data, metrics log and attack monitors of a run (before Flower starts)."""
    from fl_privacy.data.federation import build_federation
    from fl_privacy.evaluation.gan_attack import build_gan_monitor
    from fl_privacy.results import MetricsLog

    federation = build_federation(cfg)
    log.info("data %s: %d train (%d warm-up, clients %s), %d test", cfg.data.name,
             len(federation.splits.train), len(federation.warmup_indices),
             [len(p) for p in federation.client_indices], len(federation.splits.test))
    gan_monitor = build_gan_monitor(cfg, federation, run_dir)
    probes = {"gan_attack": gan_monitor} if gan_monitor else {}
    return federation, MetricsLog(run_dir / "metrics.jsonl"), probes


def finish_run(cfg: DictConfig, run_dir: Path, metrics_log, probes: dict, started: float) -> dict:
    """After the rounds: summary.json (and the attack step with `attack.after_run`), the accuracy figure."""
    from fl_privacy.plots import plot_accuracy
    from fl_privacy.results import write_json

    summary = {"config": OmegaConf.to_container(cfg, resolve=True),
               "versions": package_versions(),
               "telemetry_environment": {name: os.environ.get(name) for name in TELEMETRY_VARIABLES},
               "metrics": final_metrics(metrics_log.records),
               "privacy": privacy_summary(cfg, metrics_log.records),
               "attacks": {name: probe.finish() for name, probe in probes.items()},
               "wall_seconds": time.monotonic() - started}
    write_json(run_dir / "summary.json", summary)
    if "attack" in cfg and cfg.attack.after_run:
        from fl_privacy.attack import attack_run

        summary["attack"] = attack_run(run_dir, cfg, cfg.attack)["summary"]
        write_json(run_dir / "summary.json", summary)
    if "representation_inversion" in cfg and cfg.representation_inversion.after_run:
        from fl_privacy.representation_inversion import run_representation_inversion

        summary["representation_inversion"] = run_representation_inversion(run_dir, cfg)
    if "mia" in cfg and cfg.mia.after_run:
        from fl_privacy.membership import membership_run

        summary["mia"] = membership_run(run_dir, cfg, cfg.mia)
        write_json(run_dir / "summary.json", summary)
    plot_accuracy(metrics_log.records, run_dir / "accuracy.png",
                  f"{cfg.data.name}, {cfg.partition.name}, {cfg.simulation.num_clients} clients")
    log.info("wrote %s", run_dir)
    return summary


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    """Hydra entry: a config or data error ends the job with one line and exit code 2."""
    try:
        validate(cfg)
        run_experiment(cfg, Path(HydraConfig.get().runtime.output_dir))
    except (ConfigError, DataNotFoundError) as error:
        log.error("config error: %s", error)
        sys.exit(2)


if __name__ == "__main__":
    main()
