"""Local DP-SGD with Opacus, with a privacy ledger that carries across federated rounds.

Flower's own Opacus example builds a fresh `PrivacyEngine` every round, so its accountant forgets the
earlier rounds and the reported ε only covers the last one. Here the accountant's history (σ, sampling
rate, steps), the current σ of a decaying noise schedule and the current clipping bound of adaptive
clipping live in a `PrivacyLedger` that the client keeps in its node state, and every round's ε is
the composition of *all* the steps the client has taken so far.

The Opacus pieces are used directly (GradSampleModule, DPOptimizer / AdaClipDPOptimizer, DPDataLoader
with Poisson sampling, RDPAccountant) rather than through `PrivacyEngine`, because the engine cannot
resume an accountant, change σ per step, or take a custom clipping-bound update. ε is reported by the
accountant `defense.dp.accountant` names (`fl_privacy.defenses.accounting`: Opacus RDP or dp-accounting
PLD), and `defense.dp.max_epsilon` lets a client stop before a round would spend more.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import torch
from opacus import GradSampleModule
from opacus.accountants import RDPAccountant
from opacus.data_loader import DPDataLoader
from opacus.optimizers import AdaClipDPOptimizer, DPOptimizer
from opacus.validators import ModuleValidator
from torch import nn
from torch.utils.data import TensorDataset

from fl_privacy.config.schema import AdaptiveClippingSettings, LocalDpSettings
from fl_privacy.data.images import ImageDataset
from fl_privacy.defenses.accounting import Accountant, History, epsilon, resumed_accountant
from fl_privacy.defenses.faulty_dp import FaultyNoiseDPOptimizer
from fl_privacy.defenses.gradient_canaries import CanaryBlock, attach
from fl_privacy.defenses.noise_schedules import NoiseSchedule
from fl_privacy.seeding import Stream, derive_seed
from fl_privacy.training import StepHook, TrainSettings, TrainStats, fit_batches, make_optimizer

# Opacus's per-sample hooks on the first layer (whose input needs no gradient) trigger this harmless warning.
OPACUS_HOOK_WARNING = "Full backward hook is firing"


@dataclass(frozen=True)
class DpSettings:
    """DP-SGD settings of a `dp` client (`defense.dp` in the config)."""

    noise_multiplier: float
    max_grad_norm: float
    delta: float
    target_epsilon: float | None = None
    schedule: NoiseSchedule = NoiseSchedule()
    adaptive_clipping: AdaptiveClippingSettings | None = None
    accountant: Accountant = "rdp"
    max_epsilon: float | None = None
    noise_factor: float = 1.0  # LAB-ONLY FAULT (audit positive control): noise added = σ × this

    @classmethod
    def of(cls, dp: LocalDpSettings) -> DpSettings:
        adaptive = dp.adaptive_clipping
        return cls(
            noise_multiplier=dp.noise_multiplier, max_grad_norm=dp.max_grad_norm, delta=dp.delta,
            target_epsilon=dp.target_epsilon,
            schedule=NoiseSchedule(dp.noise_decay.schedule, dp.noise_decay.rate),
            adaptive_clipping=adaptive if adaptive.enabled else None,
            accountant=dp.accountant, max_epsilon=dp.max_epsilon, noise_factor=dp.fault_noise_factor,
        )


@dataclass
class PrivacyLedger:
    """What a DP client remembers between rounds: the accountant's history, σ₀ and the σ and
    clipping bound the next step will use (None = not started)."""

    history: History = field(default_factory=list)
    initial_sigma: float | None = None
    sigma: float | None = None
    clip_bound: float | None = None

    @property
    def steps(self) -> int:
        return sum(int(steps) for _, _, steps in self.history)

    def epsilon(self, delta: float, accountant: Accountant = "rdp") -> float:
        """ε(δ) of every step taken so far (∞ once a step had σ = 0)."""
        return epsilon(self.history, delta, accountant)


def with_steps(history: History, sigmas: list[float], rate: float) -> History:
    """`history` followed by one step at each σ of `sigmas` (equal neighbours merged into one entry)."""
    history = list(history)
    for sigma in sigmas:
        if history and history[-1][0] == sigma and history[-1][1] == rate:
            history[-1] = (sigma, rate, history[-1][2] + 1)
        else:
            history.append((sigma, rate, 1))
    return history


def sample_rate(num_examples: int, batch_size: int) -> float:
    """Poisson sampling rate of one step: 1 / (batches per epoch), as Opacus's DPDataLoader uses."""
    return 1.0 / math.ceil(num_examples / batch_size)


def schedule_epsilon(initial_sigma: float, schedule: NoiseSchedule, rate: float, steps: int,
                     delta: float, accountant: Accountant = "rdp") -> float:
    """ε(δ) of `steps` Poisson-sampled Gaussian steps whose σ follows `schedule` from `initial_sigma`."""
    return epsilon(with_steps([], schedule.sigmas(initial_sigma, steps), rate), delta, accountant)


def epsilon_after_round(ledger: PrivacyLedger, dp: DpSettings, rate: float, steps: int) -> float:
    """ε(δ) the ledger would report after `steps` more steps at rate `rate` (the next round), σ
    following the schedule from the ledger's current σ. The ledger must be started."""
    assert ledger.initial_sigma is not None and ledger.sigma is not None  # the ledger is started
    sigmas = dp.schedule.sigmas(ledger.initial_sigma, steps, start=ledger.sigma)
    return epsilon(with_steps(ledger.history, sigmas, rate), dp.delta, dp.accountant)


def calibrate_initial_sigma(target_epsilon: float, delta: float, schedule: NoiseSchedule, rate: float,
                            steps: int, tolerance: float = 0.005, accountant: Accountant = "rdp") -> float:
    """The σ₀ whose whole schedule of `steps` steps spends `target_epsilon` (bisection on σ₀).

    Opacus's `get_noise_multiplier` does this for a constant σ only; the decaying schedules need the
    same search over the whole sequence. ε = ∞ gives σ₀ = 0 (clipping only).
    """
    if math.isinf(target_epsilon):
        return 0.0
    low, high = 0.0, 1.0
    while schedule_epsilon(high, schedule, rate, steps, delta, accountant) > target_epsilon:
        low, high = high, 2 * high
        if high > 1e4:
            raise ValueError(f"target ε={target_epsilon} needs σ > 1e4 over {steps} steps")
    while high - low > tolerance * high:
        middle = (low + high) / 2
        if schedule_epsilon(middle, schedule, rate, steps, delta, accountant) > target_epsilon:
            low = middle
        else:
            high = middle
    return high


def check_opacus_compatible(model: nn.Module) -> list[str]:
    """Opacus's reasons why `model` cannot be trained with per-sample gradients (empty = fine)."""
    return [str(error) for error in ModuleValidator.validate(model, strict=False)]


class LinearAdaClipDPOptimizer(AdaClipDPOptimizer):
    """Opacus's adaptive-clipping optimizer with MindArmour's linear bound update C ← C − η(b̃ − γ)."""

    max_grad_norm: float  # set by Opacus's DPOptimizer

    def update_max_grad_norm(self) -> None:
        unclipped_share = float(self.unclipped_num) / max(self.sample_size, 1)
        bound = self.max_grad_norm - self.clipbound_learning_rate * (
            unclipped_share - self.target_unclipped_quantile)
        self.max_grad_norm = min(max(bound, self.min_clipbound), self.max_clipbound)


def _dp_optimizer(optimizer: torch.optim.Optimizer, settings: DpSettings, sigma: float, clip: float,
                  expected_batch_size: int, generator: torch.Generator) -> DPOptimizer:
    adaptive = settings.adaptive_clipping
    if settings.noise_factor != 1.0:  # the audit's positive control: less noise than accounted
        return FaultyNoiseDPOptimizer(optimizer, noise_multiplier=sigma, max_grad_norm=clip,
                                      expected_batch_size=expected_batch_size, generator=generator,
                                      noise_factor=settings.noise_factor)
    if adaptive is None:
        return DPOptimizer(optimizer, noise_multiplier=sigma, max_grad_norm=clip,
                           expected_batch_size=expected_batch_size, generator=generator)
    kind = LinearAdaClipDPOptimizer if adaptive.rule == "linear" else AdaClipDPOptimizer
    return kind(optimizer, noise_multiplier=sigma, max_grad_norm=clip,
                expected_batch_size=expected_batch_size, generator=generator,
                target_unclipped_quantile=adaptive.target_quantile,
                clipbound_learning_rate=adaptive.learning_rate, max_clipbound=adaptive.max_norm,
                min_clipbound=adaptive.min_norm, unclipped_num_std=adaptive.count_noise)


def start_ledger(ledger: PrivacyLedger, dp: DpSettings, rate: float, total_steps: int) -> None:
    """Before a client's first DP step: σ starts at σ₀ (`dp.noise_multiplier`, or calibrated so that
    `total_steps` steps at rate `rate` spend `dp.target_epsilon`) and the clipping bound at
    `dp.max_grad_norm`. A started ledger is left as it is."""
    if ledger.initial_sigma is not None:
        return
    ledger.initial_sigma = ledger.sigma = dp.noise_multiplier if dp.target_epsilon is None else \
        calibrate_initial_sigma(dp.target_epsilon, dp.delta, dp.schedule, rate, total_steps,
                                accountant=dp.accountant)
    ledger.clip_bound = dp.max_grad_norm


def _attached_accountant(optimizer: DPOptimizer, ledger: PrivacyLedger, rate: float) -> RDPAccountant:
    """An RDP accountant that continues the ledger's history and accounts every step of `optimizer`."""
    accountant = resumed_accountant(ledger.history)
    optimizer.attach_step_hook(accountant.get_optimizer_hook_fn(sample_rate=rate))
    return accountant


def _record(ledger: PrivacyLedger, accountant: RDPAccountant, optimizer: DPOptimizer) -> None:
    """Keep this round's steps and the clipping bound (adaptive clipping moves it) in the ledger."""
    ledger.history = [tuple(entry) for entry in accountant.state_dict()["history"]]
    ledger.clip_bound = float(optimizer.max_grad_norm)


def _poisson_batches(loader: DPDataLoader, epochs: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    for _ in range(epochs):
        yield from loader


def private_train(model: nn.Module, data: ImageDataset, settings: TrainSettings, dp: DpSettings,
                  ledger: PrivacyLedger, seed: int, total_steps: int,
                  after_step: StepHook | None = None, canaries: CanaryBlock | None = None) -> TrainStats:
    """Train `model` in place with DP-SGD for `settings.epochs` Poisson-sampled epochs of `data`,
    continuing `ledger` (updated in place). `total_steps` is the run's expected number of steps, used
    once to calibrate σ₀ when `dp.target_epsilon` is set; `after_step` runs after every step (e.g.
    suppress-privacy); `canaries`, the audit's Dirac canary block, is trained beside the model
    (`defenses.gradient_canaries`). The model keeps no Opacus wrapper.
    """
    rate = sample_rate(len(data), settings.batch_size)
    start_ledger(ledger, dp, rate, total_steps)
    assert ledger.sigma is not None and ledger.clip_bound is not None  # the ledger is started
    torch.manual_seed(seed)
    wrapped = GradSampleModule(model)
    optimizer = _dp_optimizer(make_optimizer(wrapped.parameters(), settings), dp, ledger.sigma,
                              ledger.clip_bound, max(1, round(len(data) * rate)),
                              torch.Generator().manual_seed(derive_seed(seed, Stream.DP_NOISE)))
    if canaries is not None:
        optimizer = attach(optimizer, canaries)
    accountant = _attached_accountant(optimizer, ledger, rate)
    loader = DPDataLoader(TensorDataset(data.images, data.labels), sample_rate=rate,
                          generator=torch.Generator().manual_seed(seed))

    def set_step_sigma() -> None:
        assert ledger.sigma is not None and ledger.initial_sigma is not None  # the ledger is started
        optimizer.noise_multiplier = ledger.sigma
        ledger.sigma = dp.schedule.next(ledger.sigma, ledger.initial_sigma)

    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=OPACUS_HOOK_WARNING)
            stats = fit_batches(wrapped, optimizer, _poisson_batches(loader, settings.epochs),
                                before_step=set_step_sigma, after_step=after_step)
    finally:
        wrapped.to_standard_module()
    _record(ledger, accountant, optimizer)
    return replace(stats, num_examples=len(data))  # the data set size, not the Poisson draws


def private_gradient(model: nn.Module, data: ImageDataset, dp: DpSettings, ledger: PrivacyLedger,
                     seed: int) -> tuple[dict[str, torch.Tensor], TrainStats]:
    """DP-FedSGD: the gradient of the whole batch `data`, each example clipped to the bound and
    Gaussian noise σ·C added to the sum, divided by the batch size; no step is taken.

    The batch is this round's fixed-size draw from the client's partition, so the release is
    accounted as one step at sampling rate 1 (no amplification by sampling: an upper bound on ε).
    """
    start_ledger(ledger, dp, 1.0, 1)
    assert ledger.initial_sigma is not None and ledger.sigma is not None and ledger.clip_bound is not None
    torch.manual_seed(seed)
    wrapped = GradSampleModule(model)
    optimizer = _dp_optimizer(torch.optim.SGD(wrapped.parameters(), lr=0.0), dp, ledger.sigma,
                              ledger.clip_bound, len(data),
                              torch.Generator().manual_seed(derive_seed(seed, Stream.DP_NOISE)))
    accountant = _attached_accountant(optimizer, ledger, 1.0)
    try:
        wrapped.train()
        logits = wrapped(data.images)
        loss = torch.nn.functional.cross_entropy(logits, data.labels)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=OPACUS_HOOK_WARNING)
            loss.backward()
        optimizer.pre_step()
        gradient = {}
        for name, parameter in model.named_parameters():
            assert parameter.grad is not None, f"Opacus gave {name} no gradient"
            gradient[name] = parameter.grad.detach().clone()
    finally:
        wrapped.to_standard_module()
    ledger.sigma = dp.schedule.next(ledger.sigma, ledger.initial_sigma)
    _record(ledger, accountant, optimizer)
    accuracy = (logits.argmax(1) == data.labels).double().mean().item()
    return gradient, TrainStats(loss.item(), accuracy, len(data), 1)
