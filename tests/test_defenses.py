"""Defenses: DP-SGD accounting against an independent accountant, noise decay, adaptive clipping,
pruning, suppress-privacy, central DP and the secure-aggregation view (unit tests + one tiny run)."""

from __future__ import annotations

import json
import logging
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from dp_accounting import dp_event, rdp
from flwr.app import Context, RecordDict
from flwr.serverapp.strategy import DifferentialPrivacyServerSideFixedClipping

from fl_privacy.apps.dp_client import load_ledger, save_ledger
from fl_privacy.config import load_settings
from fl_privacy.config.schema import AdaptiveClippingSettings
from fl_privacy.data.images import ImageDataset
from fl_privacy.defenses.accounting import epsilon
from fl_privacy.defenses.dp_sgd import (
    DpSettings,
    PrivacyLedger,
    private_gradient,
    private_train,
    sample_rate,
    schedule_epsilon,
)
from fl_privacy.defenses.noise_schedules import NoiseSchedule
from fl_privacy.defenses.update_defenses import (
    SuppressSchedule,
    prune_smallest,
    prune_update,
    suppression_hook,
)
from fl_privacy.errors import ConfigError
from fl_privacy.lab.channels.side_channels import truth_indices
from fl_privacy.lab.preflight import check_settings
from fl_privacy.models import SeedCNN
from fl_privacy.results import read_metrics
from fl_privacy.training import TrainSettings
from strategies.central_dp import AccountedServerSideClipping
from strategies.fedavg_warmup import FedAvgWithWarmup

DELTA = 1e-5
SETTINGS = TrainSettings(epochs=1, batch_size=16, lr=0.05, optimizer="sgd")


@pytest.fixture(autouse=True)
def quiet_dp_accounting():
    """dp-accounting warns for every low RDP order it skips; the orders that remain decide ε."""
    logging.disable(logging.WARNING)
    yield
    logging.disable(logging.NOTSET)


def small_data(count: int = 40, seed: int = 0) -> ImageDataset:
    generator = torch.Generator().manual_seed(seed)
    return ImageDataset(torch.rand(count, 1, 12, 12, generator=generator),
                        torch.randint(0, 3, (count,), generator=generator))


def small_model() -> SeedCNN:
    torch.manual_seed(0)
    return SeedCNN((1, 12, 12), 3)


def independent_epsilon(sigmas: list[float], rate: float) -> float:
    """Google's dp-accounting (used by Flower's `dp` extra): a Poisson-sampled Gaussian per step."""
    accountant = rdp.RdpAccountant()
    for sigma in sigmas:
        accountant.compose(dp_event.PoissonSampledDpEvent(rate, dp_event.GaussianDpEvent(sigma)))
    return accountant.get_epsilon(DELTA)


def train_rounds(dp: DpSettings, rounds: int, data: ImageDataset) -> list[float]:
    """A DP client's rounds, its ledger stored in and reloaded from a node's `context.state` between
    rounds as the ClientApp does; returns the ε reported after each round."""
    context = Context(run_id=1, node_id=1, node_config={}, state=RecordDict(), run_config={})
    reported = []
    for server_round in range(1, rounds + 1):
        ledger = load_ledger(context)
        private_train(small_model(), data, SETTINGS, dp, ledger, seed=server_round, total_steps=rounds * 3)
        save_ledger(context, ledger)
        reported.append(ledger.epsilon(dp.delta))
    return reported


@pytest.mark.parametrize("schedule", [NoiseSchedule(), NoiseSchedule("exp", 0.05), NoiseSchedule("time", 0.1),
                                      NoiseSchedule("step", 0.03)], ids=lambda s: s.name)
def test_reported_epsilon_matches_dp_accounting_within_one_percent(schedule):
    data, rounds, sigma0 = small_data(), 3, 1.1
    reported = train_rounds(DpSettings(sigma0, 1.0, DELTA, schedule=schedule), rounds, data)
    rate = sample_rate(len(data), SETTINGS.batch_size)
    steps = rounds * math.ceil(len(data) / SETTINGS.batch_size)
    # the schedules' closed forms, written out independently of NoiseSchedule
    sigmas = [sigma0]
    for _ in range(steps - 1):
        last = sigmas[-1]
        sigmas.append({"constant": last, "exp": last * math.exp(-schedule.rate),
                       "step": (1 - schedule.rate) * last,
                       "time": sigma0 / (sigma0 / last + schedule.rate)}[schedule.name])
    expected = independent_epsilon(sigmas, rate)
    assert reported[-1] == pytest.approx(expected, rel=0.01)
    assert reported[0] < reported[1] < reported[2]  # ε accumulates over rounds
    if schedule.name != "constant":
        assert expected > independent_epsilon([sigma0] * steps, rate)  # decaying noise costs more


def test_target_epsilon_is_spent_by_the_end_of_the_run():
    data, rounds = small_data(), 3
    dp = DpSettings(1.0, 1.0, DELTA, target_epsilon=4.0, schedule=NoiseSchedule("exp", 0.02))
    reported = train_rounds(dp, rounds, data)
    assert reported[-1] == pytest.approx(4.0, rel=0.02)
    assert reported[-1] <= 4.0 * 1.001


def test_epsilon_is_infinite_without_noise_and_zero_before_training():
    assert PrivacyLedger().epsilon(DELTA) == 0.0
    assert schedule_epsilon(0.0, NoiseSchedule(), 0.5, 3, DELTA) == math.inf


def test_private_training_returns_a_plain_model_that_learned():
    model, data = small_model(), small_data(64)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    private_train(model, data, SETTINGS, DpSettings(0.5, 1.0, DELTA), PrivacyLedger(), seed=0, total_steps=4)
    assert list(model.state_dict()) == list(before)  # no Opacus "_module." prefixes
    assert not hasattr(model, "_forward_counter")
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("rule", ["geometric", "linear"])
def test_adaptive_clipping_moves_the_bound_toward_the_target_quantile(rule):
    data = small_data(64)
    ledger = PrivacyLedger()
    adaptive = AdaptiveClippingSettings(enabled=True, target_quantile=0.5, learning_rate=0.5, rule=rule,
                                        count_noise=1.0)
    frozen = replace(SETTINGS, lr=1e-9)  # the model must not change, so the per-sample norms stay put
    # per-sample norms are far below 50, so every sample is unclipped: the bound must shrink
    private_train(small_model(), data, frozen, DpSettings(1.0, 50.0, DELTA, adaptive_clipping=adaptive),
                  ledger, seed=0, total_steps=4)
    assert ledger.clip_bound < 50.0
    low = PrivacyLedger()
    private_train(small_model(), data, frozen, DpSettings(1.0, 1e-3, DELTA, adaptive_clipping=adaptive),
                  low, seed=0, total_steps=4)
    assert low.clip_bound > 1e-3  # every sample clipped: the bound must grow


def test_dp_gradient_is_the_clipped_gradient_plus_noise_of_the_right_scale():
    data, clip = small_data(8), 0.01
    exact, _ = private_gradient(small_model(), data, DpSettings(0.0, clip, DELTA), PrivacyLedger(), seed=0)
    noisy, _ = private_gradient(small_model(), data, DpSettings(2.0, clip, DELTA), PrivacyLedger(), seed=0)
    difference = torch.cat([(noisy[k] - exact[k]).flatten() for k in exact])
    # noise std σ·C on the sum of the batch, divided by the batch size
    assert difference.std().item() == pytest.approx(2.0 * clip / len(data), rel=0.05)
    norm = torch.cat([g.flatten() for g in exact.values()]).norm().item()
    assert norm <= clip * 1.001  # a mean of per-example gradients each clipped to C


def test_pruning_zeroes_the_smallest_share_of_an_update():
    tensor = torch.arange(1.0, 11.0) * torch.tensor([1, -1] * 5)
    pruned = prune_smallest(tensor, 0.3)
    assert pruned.tolist()[:3] == [0, 0, 0] and torch.equal(pruned[3:], tensor[3:])
    sent = {"w": torch.ones(10)}
    returned = {"w": torch.ones(10) + tensor}
    assert torch.equal(prune_update(sent, returned, 0.3, is_gradient=False)["w"], 1 + pruned)
    assert torch.equal(prune_update(sent, {"w": tensor}, 0.3, is_gradient=True)["w"], pruned)


def test_suppress_privacy_follows_the_cubic_schedule():
    schedule = SuppressSchedule(start_round=2, rounds=4, start_sparsity=0.0, end_sparsity=0.8)
    assert schedule.sparsity(1) == 0.0 and schedule.sparsity(2) == 0.0
    assert schedule.sparsity(4) == pytest.approx(0.8 + (0.0 - 0.8) * 0.5 ** 3)
    assert schedule.sparsity(6) == schedule.sparsity(9) == pytest.approx(0.8)
    model = small_model()
    assert suppression_hook(schedule, model, 1) is None
    suppression_hook(schedule, model, 6)()
    for parameter in schedule.suppressed(model):
        assert (parameter == 0).float().mean().item() == pytest.approx(0.8, abs=0.01)
    assert (model.head.bias != 0).all()  # biases are not suppressed by default


def test_central_dp_accounts_like_dp_accounting():
    strategy = FedAvgWithWarmup(model_fn=small_model, num_nodes=5, seed=0)
    wrapper = AccountedServerSideClipping(strategy, noise_multiplier=1.3, clipping_norm=1.0,
                                          num_sampled_clients=5, delta=DELTA, accountant="rdp",
                                          epsilon_of=lambda history: epsilon(history, DELTA, "rdp"))
    assert isinstance(wrapper, DifferentialPrivacyServerSideFixedClipping)
    # it wraps from outside: the wrapped strategy is left untouched (no back-reference to the wrapper)
    assert not any(value is wrapper for value in vars(strategy).values())
    assert wrapper.epsilon() == 0.0
    wrapper.releases = 4
    accountant = rdp.RdpAccountant()
    accountant.compose(dp_event.GaussianDpEvent(1.3), 4)
    assert wrapper.round_record()["epsilon"] == pytest.approx(accountant.get_epsilon(DELTA), rel=0.01)


@pytest.mark.parametrize(("overrides", "key"), [
    (["+experiment=dp_vs_dlg", "defense.dp.target_epsilon=3"], "defense.dp.target_epsilon"),
    (["client=dp", "defense.dp.adaptive_clipping.enabled=true", "defense.dp.noise_multiplier=30"],
     "defense.dp.adaptive_clipping.count_noise"),
    (["client=dp", "defense.dp.noise_decay.schedule=linear"], "defense.dp.noise_decay.schedule"),
    (["defense.suppress.enabled=true", "defense.suppress.layers=[body.9.weight]"], "defense.suppress.layers"),
    (["defense.secure_aggregation=true"], "defense.secure_aggregation"),
    (["+experiment=dlg", "defense.central_dp.enabled=true"], "defense.central_dp.enabled"),
    (["defense.pruning.fraction=1"], "defense.pruning.fraction"),
])
def test_bad_defense_settings_name_the_key(cfg_factory, overrides, key):
    # as the entry point checks: the schema and its rules, then the checks that need code
    with pytest.raises(ConfigError) as error:
        check_settings(load_settings(cfg_factory(*overrides)))
    assert key in str(error.value)


@pytest.fixture(scope="module")
def defended_run(farm_runs) -> Path:
    """One tiny run with every defense on at once (tests/farm.py `defended`)."""
    return farm_runs.run_dir("defended")


@pytest.mark.simulation
@pytest.mark.farm("defended")
def test_dp_clients_report_accumulating_epsilon_and_the_summary_has_the_maximum(defended_run):
    records = read_metrics(defended_run / "metrics.jsonl")
    first, second = records[1]["privacy"], records[2]["privacy"]
    assert set(second["per_client"]) == {"0", "1"}  # client 2 is honest
    assert all(second["per_client"][p] > first["per_client"][p] > 0 for p in ("0", "1"))
    summary = json.loads((defended_run / "summary.json").read_text())
    privacy = summary["privacy"]
    assert privacy["max_epsilon"] == max(second["per_client"].values())
    assert privacy["delta"] == DELTA
    assert privacy["central"]["releases"] == 2
    assert privacy["central"]["epsilon"] > records[1]["central_dp"]["epsilon"] > 0


@pytest.mark.simulation
@pytest.mark.farm("defended")
def test_secure_aggregation_server_sees_only_the_aggregate(defended_run):
    captured = sorted(p.name for p in (defended_run / "captures" / "round_002").iterdir())
    assert captured == ["partition_-1.pt"]
    record = torch.load(defended_run / "captures" / "round_002" / "partition_-1.pt", weights_only=True)
    meta = record["metadata"]
    assert meta["partitions"] == [0, 1, 2] and meta["num_examples"] == 3 * 48
    assert len(truth_indices(defended_run, meta)) == 3 * 48
    sent, aggregate = record["global_state"], record["updated_state"]
    assert any(not torch.equal(sent[k], aggregate[k]) for k in sent)
