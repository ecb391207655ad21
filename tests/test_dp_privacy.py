"""Auditable DP: what a `dp` client's reply holds, central DP's sensitivity, the PLD accountant, the
privacy budget, and the one-run empirical ε lower bound with canaries."""

from __future__ import annotations

import json
import logging
import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from dp_accounting import dp_event, pld, rdp
from flwr.app import (
    ArrayRecord,
    ConfigRecord,
    Context,
    Message,
    MessageType,
    Metadata,
    MetricRecord,
    RecordDict,
)

from fl_privacy.apps.client_app import handle_train
from fl_privacy.apps.dp_client import load_ledger, save_ledger
from fl_privacy.data.federation import build_federation
from fl_privacy.data.images import ImageDataset
from fl_privacy.defenses.accounting import epsilon
from fl_privacy.defenses.dp_sgd import DpSettings, PrivacyLedger, private_train, sample_rate
from fl_privacy.evaluation.dp_audit import audit_epsilon, epsilon_lower_bound, p_value
from fl_privacy.lab.pipelines.dp_audit_pipeline import audited_privacy
from fl_privacy.models import SeedCNN, build_model
from fl_privacy.protocol import (
    ARRAYS,
    CONFIG,
    METRICS,
    NUM_EXAMPLES,
    PARTITION_ID,
    PRIVACY_RECORD,
    SERVER_ROUND,
    TRAIN_ACCURACY,
    TRAIN_LOSS,
    UNIT_WEIGHT,
)
from fl_privacy.report.tables import dp_audit_table
from fl_privacy.results import read_metrics, write_json
from fl_privacy.training import TrainSettings
from strategies.central_dp import AccountedServerSideClipping
from strategies.fedavg_warmup import FedAvgWithWarmup


@pytest.fixture(autouse=True)
def quiet_dp_accounting():
    """dp-accounting warns for every low RDP order it skips; the orders that remain decide ε."""
    logging.disable(logging.WARNING)
    yield
    logging.disable(logging.NOTSET)


# --- a dp client's reply ---------------------------------------------------------------------------
class NoHooks:
    def record_truth(self, server_round, partition_id, indices) -> None: ...

    def publish(self, name, server_round, payload) -> None: ...

    def save_node_state(self, partition_id, server_round, state) -> None: ...

    def restore_node_state(self, partition_id, state) -> None: ...


def train_message(settings, server_round: int) -> Message:
    splits = build_federation(settings.federation).splits
    torch.manual_seed(0)
    model = build_model(settings.model, splits.image_shape, splits.num_classes)
    metadata = Metadata(run_id=1, message_id=f"m{server_round}", src_node_id=0, dst_node_id=1,
                        reply_to_message_id="", group_id="", created_at=0.0, ttl=60.0,
                        message_type=MessageType.TRAIN)
    content = RecordDict({ARRAYS: ArrayRecord(model.state_dict()),
                          CONFIG: ConfigRecord({SERVER_ROUND: server_round})})
    return Message(content=content, metadata=metadata)


def node_context() -> Context:
    return Context(run_id=1, node_id=1, node_config={PARTITION_ID: 0}, state=RecordDict(), run_config={})


def dp_reply(settings, federation, monkeypatch, server_round: int = 1, context: Context | None = None
             ) -> Message:
    """Client 0's reply to a train message when the federation (its private data) is `federation`."""
    monkeypatch.setattr("fl_privacy.apps.client_app.cached_federation", lambda _: federation)
    return handle_train(settings, NoHooks(), train_message(settings, server_round), context or node_context())


def other_private_data(federation):
    """The same federation, but client 0 holds different records (its images inverted, labels shifted)."""
    train, own = federation.splits.train, torch.as_tensor(federation.client_indices[0])
    images, labels = train.images.clone(), train.labels.clone()
    images[own] = 1 - images[own]
    labels[own] = (labels[own] + 1) % federation.splits.num_classes
    return replace(federation, splits=replace(federation.splits, train=ImageDataset(images, labels)))


DP_CLIENT = ["client=dp", "simulation.num_clients=10", "client.examples_per_round=64", "client.batch_size=16",
             "defense.dp.noise_multiplier=1.0"]


@pytest.mark.parametrize("report", [False, True], ids=["default", "opted_in_leak"])
def test_a_dp_reply_holds_nothing_computed_on_private_data_unless_opted_in(settings_factory, monkeypatch,
                                                                           one_torch_thread, report):
    settings = settings_factory(*DP_CLIENT, f"defense.dp.report_train_metrics={str(report).lower()}")
    federation = build_federation(settings.federation)
    first = dp_reply(settings, federation, monkeypatch)
    second = dp_reply(settings, other_private_data(federation), monkeypatch)
    # the privatised release differs with the data ...
    a, b = (r.content.array_records[ARRAYS].to_torch_state_dict() for r in (first, second))
    assert any(not torch.equal(a[k], b[k]) for k in a)
    # ... everything else in the reply is the same for any private data of the same size, unless opted in
    records = [(dict(r.content.metric_records[METRICS]), dict(r.content.config_records[PRIVACY_RECORD]))
               for r in (first, second)]
    assert records[0][1] == records[1][1]
    assert set(first.content.keys()) == {ARRAYS, METRICS, PRIVACY_RECORD}
    metrics = [{key: None if value != value else value for key, value in m.items()} for m, _ in records]
    if report:
        assert metrics[0][TRAIN_LOSS] != metrics[1][TRAIN_LOSS]
    else:  # NaN: not reported
        assert metrics[0] == metrics[1]
        assert metrics[0][TRAIN_LOSS] is None and metrics[0][TRAIN_ACCURACY] is None


def test_a_dp_client_stops_at_its_budget_and_says_so(settings_factory, monkeypatch, one_torch_thread):
    probe = settings_factory(*DP_CLIENT)
    federation = build_federation(probe.federation)
    context = node_context()
    for server_round in (1, 2):  # a client without budget: ε after two rounds
        two_rounds = dp_reply(probe, federation, monkeypatch, server_round, context)
    budget = float(two_rounds.content.config_records[PRIVACY_RECORD]["epsilon"]) * 1.001  # not three
    settings = settings_factory(*DP_CLIENT, f"defense.dp.max_epsilon={budget}")
    context, reported = node_context(), []
    for server_round in range(1, 5):
        reply = dp_reply(settings, federation, monkeypatch, server_round, context)
        reported.append((dict(reply.content.config_records[PRIVACY_RECORD]),
                         dict(reply.content.metric_records[METRICS])))
    assert [int(p["budget_exhausted"]) for p, _ in reported] == [0, 0, 1, 1]
    assert [m[NUM_EXAMPLES] for _, m in reported][2:] == [0, 0]  # no weight in the average once stopped
    epsilons = [float(p["epsilon"]) for p, _ in reported]
    assert epsilons[0] < epsilons[1] == epsilons[2] == epsilons[3] <= budget


# --- central DP ------------------------------------------------------------------------------------
def tiny_model() -> torch.nn.Module:
    return torch.nn.Linear(20, 5)


def update_reply(node: int, state: dict[str, torch.Tensor]) -> Message:
    metadata = Metadata(run_id=1, message_id="", src_node_id=node, dst_node_id=0, reply_to_message_id="x",
                        group_id="", created_at=0.0, ttl=60.0, message_type=MessageType.TRAIN)
    metrics = MetricRecord({UNIT_WEIGHT: 1, NUM_EXAMPLES: 10})
    content = RecordDict({ARRAYS: ArrayRecord(state), METRICS: metrics})
    return Message(content=content, metadata=metadata)


def central_dp(sigma: float, n: int, clip: float = 1.0, max_epsilon: float | None = None
               ) -> AccountedServerSideClipping:
    strategy = FedAvgWithWarmup(model_fn=tiny_model, num_nodes=n + 1, seed=0, weighted_by_key=UNIT_WEIGHT)
    strategy.partition_of = {node: node for node in range(n + 1)}
    return AccountedServerSideClipping(strategy, noise_multiplier=sigma, clipping_norm=clip,
                                       num_sampled_clients=n, delta=1e-5, accountant="rdp",
                                       epsilon_of=lambda history: epsilon(history, 1e-5, "rdp"),
                                       max_epsilon=max_epsilon)


def flat(state: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([v.flatten() for v in state.values()])


def aggregate(wrapper: AccountedServerSideClipping, sent: dict, updates: list[torch.Tensor]) -> torch.Tensor:
    """The noised aggregate's change of the sent weights, for client updates given as flat vectors."""
    wrapper.current_arrays = ArrayRecord(sent)
    replies = []
    for node, update in enumerate(updates):
        values, start = {}, 0
        for name, tensor in sent.items():
            values[name] = tensor + update[start:start + tensor.numel()].view_as(tensor)
            start += tensor.numel()
        replies.append(update_reply(node, values))
    arrays, _ = wrapper.aggregate_train(1, replies)
    assert arrays is not None
    return flat(arrays.to_torch_state_dict()) - flat(sent)


def test_central_dp_sensitivity_is_the_one_its_accountant_assumes(one_torch_thread):
    n, clip, sigma = 4, 1.0, 0.8
    sent = {k: v.detach().clone() for k, v in tiny_model().state_dict().items()}
    size = flat(sent).numel()
    direction = torch.zeros(size)
    direction[0] = 1.0
    # the worst case for a mean over the replies received: three updates +3C e₁ (clipped to +C e₁) and
    # one -3C e₁; removing that one moves a k-mean from C/2 to C (2C/n), the fixed denominator by C/n
    neighbours = [[3 * direction] * 3 + [-3 * direction], [3 * direction] * 3]
    noiseless = central_dp(0.0, n, clip)
    with_one, without = (aggregate(noiseless, sent, updates) for updates in neighbours)
    assert torch.linalg.norm(with_one - without).item() == pytest.approx(clip / n, rel=1e-5)
    assert noiseless.sensitivity == clip / n
    rng = torch.Generator().manual_seed(0)
    for _ in range(20):  # any neighbours: at most C/n apart
        updates = [torch.randn(size, generator=rng) * 3 for _ in range(n)]
        gap = aggregate(noiseless, sent, updates) - aggregate(noiseless, sent, updates[:-1])
        assert torch.linalg.norm(gap).item() <= clip / n * (1 + 1e-5)
    # the noise is σ times that sensitivity, and the accountant composes a Gaussian of multiplier σ
    noisy = central_dp(sigma, n, clip)
    big, step = {"w": torch.zeros(20000)}, torch.zeros(20000)
    step[0] = 1e-3
    noise = aggregate(noisy, big, [step] * n) - step
    assert noise.std().item() / noisy.sensitivity == pytest.approx(sigma, rel=0.03)
    accountant = rdp.RdpAccountant()
    accountant.compose(dp_event.GaussianDpEvent(sigma))
    assert noisy.round_record()["epsilon"] == pytest.approx(accountant.get_epsilon(1e-5), rel=0.01)
    # a client that sends the weights back unchanged adds nothing (Flower's clipping would divide by 0)
    assert torch.equal(aggregate(noiseless, sent, updates[:-1] + [torch.zeros(size)]),
                       aggregate(noiseless, sent, updates[:-1]))


def test_central_dp_stops_training_at_its_budget(one_torch_thread):
    wrapper = central_dp(1.0, 2, max_epsilon=epsilon([(1.0, 1.0, 3)], 1e-5) * 1.01)
    wrapper.strategy.configure_train = lambda *args: ["sampled"] * 2  # no grid here: two sampled clients
    sent = {k: v.detach().clone() for k, v in tiny_model().state_dict().items()}
    size = flat(sent).numel()
    for server_round in range(1, 6):
        wrapper.current_arrays = ArrayRecord(sent)
        if wrapper.configure_train(server_round, ArrayRecord(sent), ConfigRecord(), grid=None) == []:
            continue
        aggregate(wrapper, sent, [torch.ones(size)] * 2)
    record = wrapper.round_record()
    assert record["releases"] == 3 and record["budget_stopped_at_round"] == 4
    assert record["epsilon"] <= wrapper.max_epsilon


# --- the PLD accountant ----------------------------------------------------------------------------
def test_pld_epsilon_agrees_with_dp_accounting_and_is_below_rdp(one_torch_thread):
    generator = torch.Generator().manual_seed(3)
    data = ImageDataset(torch.rand(56, 1, 12, 12, generator=generator),
                        torch.randint(0, 3, (56,), generator=generator))
    dp, ledger = DpSettings(0.9, 1.0, 1e-6, accountant="pld"), PrivacyLedger()
    settings = TrainSettings(epochs=3, batch_size=8, lr=0.05, optimizer="sgd")
    torch.manual_seed(0)
    private_train(SeedCNN((1, 12, 12), 3), data, settings, dp, ledger, seed=1, total_steps=21)
    independent = pld.PLDAccountant()  # one Poisson-sampled Gaussian per step, composed step by step
    for _ in range(21):
        independent.compose(dp_event.PoissonSampledDpEvent(sample_rate(56, 8), dp_event.GaussianDpEvent(0.9)))
    reported = ledger.epsilon(1e-6, "pld")
    assert ledger.steps == 21
    assert reported == pytest.approx(independent.get_epsilon(1e-6), rel=0.01)
    assert reported < ledger.epsilon(1e-6, "rdp")


def test_target_epsilon_calibrated_with_pld_is_spent_by_the_end():
    context, data = node_context(), ImageDataset(torch.rand(40, 1, 12, 12), torch.randint(0, 3, (40,)))
    dp = DpSettings(1.0, 1.0, 1e-5, target_epsilon=3.0, accountant="pld")
    settings = TrainSettings(epochs=1, batch_size=16, lr=0.05, optimizer="sgd")
    for server_round in (1, 2):
        ledger = load_ledger(context)
        torch.manual_seed(0)
        private_train(SeedCNN((1, 12, 12), 3), data, settings, dp, ledger, seed=server_round, total_steps=6)
        save_ledger(context, ledger)
    assert ledger.epsilon(1e-5, "pld") == pytest.approx(3.0, rel=0.02)
    assert ledger.epsilon(1e-5, "pld") <= 3.0 * 1.001


# --- the one-run audit -----------------------------------------------------------------------------
def test_one_run_p_value_is_a_binomial_tail_without_delta():
    # δ = 0: P[Binomial(r, e^ε/(1+e^ε)) ≥ v]; at ε = 0 a fair coin: 60 of 100 has p ≈ 0.0284
    assert p_value(1000, 100, 60, 0.0, 0.0) == pytest.approx(0.028444, rel=1e-3)
    assert p_value(1000, 100, 60, 0.0, 1e-5) > p_value(1000, 100, 60, 0.0, 0.0)
    assert p_value(1000, 100, 60, 1.0, 0.0) > p_value(1000, 100, 60, 0.0, 0.0)


def test_one_run_bound_is_zero_for_chance_guesses_and_grows_with_correct_ones():
    assert epsilon_lower_bound(1000, 100, 50, 1e-5, 0.05) == 0.0
    bounds = [epsilon_lower_bound(1000, 100, v, 1e-5, 0.05) for v in (70, 85, 100)]
    assert 0 < bounds[0] < bounds[1] < bounds[2] < math.log(100)
    # at the bound, the p-value is the significance level
    assert p_value(1000, 100, 85, bounds[1], 1e-5) == pytest.approx(0.05, rel=1e-3)


def test_the_audit_has_power_and_no_false_positives():
    rng = np.random.default_rng(0)
    included = rng.random(1000) < 0.5
    assert audit_epsilon(rng.random(1000), included, 1e-5, 0.95, [10, 50, 200])["epsilon_lower_bound"] == 0.0
    separated = audit_epsilon(included + rng.random(1000) * 0.5, included, 1e-5, 0.95, [10, 50, 200])
    assert separated["epsilon_lower_bound"] > 3 and separated["canary_auc"] == 1.0
    # randomised response at ε = 1 is ε-DP: its bound must stay at or below 1 (seeds: 95% confidence each)
    for seed in range(5):
        rng = np.random.default_rng(seed)
        truth = rng.random(1000) < 0.5
        answer = np.where(rng.random(1000) < 1 / (1 + math.exp(-1)), truth, ~truth)
        assert audit_epsilon(answer + rng.random(1000) * 1e-3, truth, 0.0, 0.95, [50, 200, 500]
                             )["epsilon_lower_bound"] <= 1.0


def test_canaries_are_drawn_out_of_the_pool_and_half_go_to_the_target(settings_factory):
    three = ("partition=iid", "simulation.num_clients=3")
    federation = build_federation(settings_factory(*three, "data.canaries.count=200",
                                                   "data.canaries.partition=1").federation)
    plain = build_federation(settings_factory(*three).federation)
    canaries, included = federation.canary_indices, federation.canary_included
    assert len(canaries) == 200 and 60 < included.sum() < 140
    assert set(canaries[included]) <= set(federation.client_indices[1])
    clients = federation.client_indices
    others = np.concatenate([clients[0], clients[2], federation.warmup_indices])
    assert not set(canaries) & set(others) and not set(canaries[~included]) & set(clients[1])
    # mislabelled: every canary's label differs from the image's true label
    assert (federation.splits.train.labels[canaries] != plain.splits.train.labels[canaries]).all()
    ood = build_federation(settings_factory(*three, "data.canaries.count=50",
                                            "data.canaries.kind=ood").federation)
    assert len(ood.splits.train) == len(plain.splits.train) + 50


# --- one tiny run: canaries, local DP with a budget, the audit --------------------------------------
@pytest.mark.simulation
@pytest.mark.farm("dp_audit_budget")
def test_a_budgeted_dp_audit_run_stops_clients_at_the_budget_and_audits(farm_runs):
    """tests/farm.py `dp_audit_budget`: the budget 1.1 stops the clients in round 3."""
    tmp_path = farm_runs.run_dir("dp_audit_budget")
    summary = json.loads((tmp_path / "summary.json").read_text())
    privacy, records = summary["privacy"], read_metrics(tmp_path / "metrics.jsonl")
    assert privacy["accountant"] == "rdp" and set(privacy["budget_stopped_at_round"]) == {"0", "1"}
    assert all(0 < e <= 1.1 for e in privacy["per_client"].values())
    stop = privacy["budget_stopped_at_round"]["0"]
    assert 1 < stop <= 3  # trained at least one round, then stopped
    assert records[stop]["privacy"]["per_client"]["0"] == records[stop - 1]["privacy"]["per_client"]["0"]
    audit = summary["dp_audit"]
    assert audit["accounted_epsilon"] == privacy["per_client"]["0"] and audit["num_canaries"] == 100
    assert 0 <= audit["epsilon_lower_bound"] <= audit["accounted_epsilon"]


def test_the_dp_audit_table_aggregates_seeds_per_setting(tmp_path):
    for name, accounted, bound, auc in (("a", None, 1.0, 0.8), ("b", None, 2.0, 0.9), ("c", 1.0, 0.0, 0.5)):
        run = tmp_path / name
        config = {"seed": 0, "defense": {"dp": {"target_epsilon": accounted}}}
        write_json(run / "summary.json", {"config": config, "metrics": {"final": {"accuracy": 0.5}}})
        scores = {"accounted_epsilon": accounted, "epsilon_lower_bound": bound, "confidence": 0.95,
                  "canary_auc": auc}
        write_json(run / "dp_audit" / "scores.json", scores)
    table = dp_audit_table(tmp_path, ["defense.dp.target_epsilon"]).splitlines()
    # ∞ row: two seeds, per-seed values, the bootstrap of their mean spans them (no t interval below 0)
    assert table[2].startswith("| None | 2 | ∞ | - | 1.00, 2.00 | 1.500 [1.000, 2.000] | 95% | - | "
                               "0.800, 0.900 | 0.850 [0.800, 0.900] |")
    assert table[3].startswith("| 1.0 | 1 | 1.000 | - | 0.00 | 0.000 | 95% | - | 0.500 | 0.500 |")


@pytest.mark.parametrize(("privacy", "expected"), [
    ({"delta": 1e-5, "accountant": "pld", "per_client": {"0": 2.5, "1": 3.0}}, (2.5, 1e-5, "pld")),
    ({"delta": 1e-5, "accountant": "rdp", "per_client": {"0": None}}, (math.inf, 1e-5, "rdp")),
    ({"central": {"epsilon": 4.0, "delta": 1e-6, "accountant": "rdp"}}, (4.0, 1e-6, "rdp")),
    ({}, (math.inf, 1e-5, "none")),
], ids=["local", "local_no_noise", "central", "no_dp"])
def test_the_audit_compares_with_the_canary_clients_accounted_epsilon(settings_factory, tmp_path, privacy,
                                                                       expected):
    write_json(tmp_path / "summary.json", {"config": {}, "privacy": privacy})
    assert audited_privacy(settings_factory("data.canaries.count=10"), tmp_path) == expected


def test_the_privacy_record_keeps_summary_json_as_runs_wrote_it_and_reads_it_back():
    """summary.json's `privacy` from a round's sections: the same keys as before the typed record, and the
    record read back from it gives the same ε per mechanism (∞, stored as null, comes back as ∞)."""
    from fl_privacy.privacy_record import ClientPrivacy, PrivacySummary

    reply = ClientPrivacy(2.5, 1e-5, "rdp", 1.1, 1.0, 40, budget_exhausted=True).to_record()
    assert reply["budget_exhausted"] == 1 and ClientPrivacy.from_record(reply).budget_exhausted
    last_round = {"privacy": {"per_client": {"0": 2.5, "1": None}, "max_epsilon": None, "accountant": "rdp",
                              "budget_stopped_at_round": {"0": 3}},
                  "central_dp": {"epsilon": 4.0, "delta": 1e-6, "accountant": "pld", "releases": 5,
                                 "noise_multiplier": 0.5, "clipping_norm": 5.0, "sensitivity": 1.25}}
    summary = PrivacySummary.from_round(last_round, client_delta=1e-5).to_json()
    assert summary == {"delta": 1e-5, "per_client": {"0": 2.5, "1": math.inf}, "max_epsilon": math.inf,
                       "accountant": "rdp", "budget_stopped_at_round": {"0": 3},
                       "central": last_round["central_dp"]}
    back = PrivacySummary.from_json(summary)
    assert back.accounted(0, 1e-5) == (2.5, 1e-5, "rdp") and back.accounted(7, 1e-5) == (4.0, 1e-6, "pld")
    assert PrivacySummary.from_json(None).max_epsilon is None
