"""The ServerApp: warm-up, FedAvg rounds (optionally inside central DP), central evaluation, final model.

Each round's record (central evaluation, aggregated client metrics, privacy spent) goes to the `on_round`
listener the caller passes in (the lab adds its monitors and writes metrics.jsonl).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, cast

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, MetricRecord
from flwr.serverapp import Grid, ServerApp

from fl_privacy.config.schema import Settings
from fl_privacy.data.federation import Federation
from fl_privacy.defenses.accounting import History, epsilon
from fl_privacy.devices import torch_device
from fl_privacy.models import model_factory, model_outputs
from fl_privacy.privacy_record import CENTRAL_SECTION
from fl_privacy.protocol import UNIT_WEIGHT, sample_size
from fl_privacy.results import save_torch
from fl_privacy.run_layout import FINAL_MODEL, INITIAL_MODEL
from fl_privacy.seeding import restore_rng_state, rng_state
from fl_privacy.training import TrainSettings, evaluate
from strategies import (
    STRATEGIES,
    AccountedServerSideClipping,
    CaptureSchedule,
    FedAvgWithWarmup,
    ImprintCapture,
)

log = logging.getLogger(__name__)

# (round, record) -> None: whoever records rounds (round 0 = after warm-up)
RoundListener = Callable[[int, dict], None]


def central_evaluator(model_fn: Callable[[], torch.nn.Module], federation: Federation
                      ) -> Callable[[ArrayRecord], MetricRecord]:
    """Evaluate global weights on the central test split: loss, accuracy, per-class accuracy."""

    def evaluate_global(arrays: ArrayRecord) -> MetricRecord:
        model = model_fn()
        model.load_state_dict(arrays.to_torch_state_dict())
        result = evaluate(model, federation.splits.test, federation.splits.num_classes)
        return MetricRecord({"loss": result.loss, "accuracy": result.accuracy,
                             "per_class_accuracy": result.per_class_accuracy})

    return evaluate_global


def build_strategy(settings: Settings, federation: Federation, run_dir: Path) -> FedAvgWithWarmup:
    """`strategy.name` with the warm-up set, seeded sampling and (under central DP) uniform weights."""
    splits, strategy = federation.splits, settings.strategy
    options: dict = {"weighted_by_key": UNIT_WEIGHT} if settings.defense.central_dp.enabled else {}
    if settings.strategy.name == "gradient_capture":
        options |= {"run_dir": run_dir, "schedule": CaptureSchedule.from_settings(settings.strategy.capture),
                    "input_shape": splits.image_shape, "num_classes": splits.num_classes,
                    "aggregate_view": settings.defense.secure_aggregation}
    # a model with an imprint block is what a malicious capturing server sends (rules.py checks the pair)
    strategy_class = ImprintCapture if settings.model.imprint_bins else STRATEGIES[settings.strategy.name]
    return strategy_class(
        model_fn=model_factory(settings.model, splits.image_shape,
                               model_outputs(settings.client, splits.num_classes), settings.seed,
                               torch_device(settings.device)),
        num_nodes=settings.simulation.num_clients, seed=settings.seed, warmup_data=federation.warmup,
        warmup=TrainSettings.of(strategy.warmup), min_train_replies=strategy.min_train_replies,
        fraction_train=strategy.fraction_train, fraction_evaluate=strategy.fraction_evaluate, **options)


def with_central_dp(strategy: FedAvgWithWarmup, settings: Settings) -> AccountedServerSideClipping:
    """Flower's server-side clipping + noise around `strategy` (`defense.central_dp`), from outside."""
    central, num_clients = settings.defense.central_dp, settings.simulation.num_clients

    def epsilon_of(history: History) -> float:
        return epsilon(history, central.delta, central.accountant)

    return AccountedServerSideClipping(
        strategy, noise_multiplier=central.noise_multiplier, clipping_norm=central.clipping_norm,
        num_sampled_clients=sample_size(num_clients, settings.strategy.fraction_train,
                                        strategy.min_train_nodes),
        delta=central.delta, epsilon_of=epsilon_of, accountant=central.accountant,
        max_epsilon=central.max_epsilon)


class RoundCheckpoints(Protocol):
    """Whoever keeps checkpoints (the lab): asked after every recorded round."""

    def due(self, server_round: int) -> bool: ...

    def save(self, server_round: int, arrays: dict[str, torch.Tensor], server: dict[str, Any]) -> None: ...


class ResumePoint(Protocol):
    """A checkpoint to continue from: the rounds done, the global model then, the server's state then."""

    @property
    def round(self) -> int: ...

    @property
    def arrays(self) -> dict[str, torch.Tensor]: ...

    @property
    def server(self) -> dict[str, Any]: ...


def run_server(grid: Grid, settings: Settings, federation: Federation, run_dir: Path,
               on_round: RoundListener, checkpoints: RoundCheckpoints | None = None,
               resume: ResumePoint | None = None) -> None:
    """The ServerApp's work: discover the nodes, warm up (or continue from `resume`), run the rounds (inside
    central DP when enabled), hand each round's record to `on_round` and, when due, the state to
    `checkpoints`, and save the final model to `run_dir`."""
    strategy = build_strategy(settings, federation, run_dir)
    central_dp = with_central_dp(strategy, settings) if settings.defense.central_dp.enabled else None
    evaluate_central = central_evaluator(strategy.model_fn, federation)

    def server_state() -> dict[str, Any]:
        return {"strategy": strategy.state_dict(), "rng": rng_state(),
                "central_dp": central_dp.state_dict() if central_dp is not None else None}

    latest: dict[str, ArrayRecord] = {}  # the last evaluated model: final even if no round aggregated

    def evaluate_and_record(flower_round: int, arrays: ArrayRecord) -> MetricRecord:
        latest["arrays"] = arrays
        central = evaluate_central(arrays)
        if flower_round == 0 and strategy.rounds_done:  # a resumed run: that round is on record already
            return central
        server_round = strategy.rounds_done + flower_round
        record = {"round": server_round, "central": dict(central), **strategy.take_round_metrics()}
        if central_dp is not None:
            record[CENTRAL_SECTION] = central_dp.round_record()
        on_round(server_round, record)
        strategy.announce(float(cast(float, central["accuracy"])))  # a scalar, see `central_evaluator`
        if checkpoints is not None and checkpoints.due(server_round):
            checkpoints.save(server_round, arrays.to_torch_state_dict(), server_state())
        return central

    strategy.discover(grid)
    if resume is None:
        arrays = strategy.warm_up(ArrayRecord(strategy.model_fn().state_dict()))
        if settings.attack.dp_audit_fl.after_run:  # the federated audit measures the final model's delta
            save_torch(run_dir / INITIAL_MODEL, arrays.to_torch_state_dict())
    else:
        arrays = ArrayRecord(resume.arrays)
        strategy.resume(resume.round, resume.server["strategy"])
        if central_dp is not None:
            central_dp.resume(resume.server["central_dp"])
        restore_rng_state(resume.server["rng"])
        log.info("resuming after round %d of %d", resume.round, settings.strategy.num_rounds)
    runner = central_dp if central_dp is not None else strategy
    rounds_left = settings.strategy.num_rounds - strategy.rounds_done
    runner.start(grid=grid, initial_arrays=arrays, num_rounds=rounds_left, train_config=ConfigRecord(),
                 evaluate_fn=evaluate_and_record)
    if settings.save_model and "arrays" in latest:
        save_torch(run_dir / FINAL_MODEL, latest["arrays"].to_torch_state_dict())


def build_server_app(settings: Settings, federation: Federation, run_dir: Path, on_round: RoundListener,
                     checkpoints: RoundCheckpoints | None = None, resume: ResumePoint | None = None
                     ) -> ServerApp:
    """A ServerApp that runs `run_server` with these settings."""
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        run_server(grid, settings, federation, run_dir, on_round, checkpoints, resume)

    return app
