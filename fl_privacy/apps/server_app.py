"""The ServerApp: warm-up, FedAvg rounds, central evaluation, and the run's files."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, MetricRecord
from flwr.serverapp import Grid, ServerApp
from omegaconf import DictConfig

from fl_privacy.clients import model_outputs
from fl_privacy.data.federation import Federation
from fl_privacy.models import model_factory
from fl_privacy.results import MetricsLog, save_state_dict
from fl_privacy.training import TrainSettings, evaluate
from strategies import STRATEGIES, CaptureSchedule
from strategies.central_dp import UNIT_WEIGHT, AccountedServerSideClipping
from strategies.fedavg_warmup import FedAvgWithWarmup, RoundProbe
from strategies.partition_sampling import sample_size

log = logging.getLogger(__name__)


def central_evaluator(model_fn: Callable[[], torch.nn.Module], federation: Federation
                      ) -> Callable[[int, ArrayRecord], MetricRecord]:
    """Evaluate global weights on the central test split: loss, accuracy, per-class accuracy."""

    def evaluate_global(server_round: int, arrays: ArrayRecord) -> MetricRecord:
        model = model_fn()
        model.load_state_dict(arrays.to_torch_state_dict())
        result = evaluate(model, federation.splits.test, federation.splits.num_classes)
        return MetricRecord({"loss": result.loss, "accuracy": result.accuracy,
                             "per_class_accuracy": result.per_class_accuracy})

    return evaluate_global


def strategy_options(cfg: DictConfig, run_dir: Path, federation: Federation) -> dict:
    """Keyword arguments `cfg.strategy.name` (and central DP's uniform weighting) need beyond
    FedAvgWithWarmup's."""
    options = {"weighted_by_key": UNIT_WEIGHT} if cfg.defense.central_dp.enabled else {}
    if cfg.strategy.name == "gradient_capture":
        return options | {"run_dir": run_dir, "schedule": CaptureSchedule.from_cfg(cfg.strategy.capture),
                "input_shape": federation.splits.image_shape, "num_classes": federation.splits.num_classes,
                "aggregate_view": bool(cfg.defense.secure_aggregation)}
    return options


def with_central_dp(strategy: FedAvgWithWarmup, cfg: DictConfig) -> AccountedServerSideClipping:
    """Wrap `strategy` in Flower's server-side clipping + noise (`defense.central_dp`)."""
    central = cfg.defense.central_dp
    num_clients = cfg.simulation.num_clients
    return AccountedServerSideClipping(
        strategy, noise_multiplier=float(central.noise_multiplier),
        clipping_norm=float(central.clipping_norm),
        num_sampled_clients=sample_size(num_clients, cfg.strategy.fraction_train, strategy.min_train_nodes),
        population=num_clients, delta=float(central.delta))


def build_server_app(cfg: DictConfig, federation: Federation, run_dir: Path,
                     metrics_log: MetricsLog, round_probes: dict[str, RoundProbe] | None = None
                     ) -> ServerApp:
    """A ServerApp that runs `cfg.strategy` and writes rounds (with `round_probes`' results,
    e.g. attack monitors) to `metrics_log`."""
    app = ServerApp()
    splits = federation.splits
    model_fn = model_factory(cfg.model, splits.image_shape,
                             model_outputs(cfg, splits.num_classes), cfg.seed)

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        strategy = STRATEGIES[cfg.strategy.name](
            model_fn=model_fn, num_nodes=cfg.simulation.num_clients, seed=cfg.seed,
            warmup_data=federation.warmup, warmup=TrainSettings.from_cfg(cfg.strategy.warmup),
            round_logger=metrics_log.append, round_probes=round_probes,
            fraction_train=cfg.strategy.fraction_train,
            fraction_evaluate=cfg.strategy.fraction_evaluate,
            **strategy_options(cfg, run_dir, federation),
        )
        if cfg.defense.central_dp.enabled:
            with_central_dp(strategy, cfg)
        result = strategy.start(grid=grid, initial_arrays=ArrayRecord(model_fn().state_dict()),
                                num_rounds=cfg.strategy.num_rounds, train_config=ConfigRecord(),
                                evaluate_fn=central_evaluator(model_fn, federation))
        if cfg.save_model and result.arrays is not None:
            save_state_dict(run_dir / "final_model.pt", result.arrays.to_torch_state_dict())

    return app
