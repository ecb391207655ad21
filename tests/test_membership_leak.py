"""Issue 18's membership pieces: RMIA on known answers, the bootstrap CIs and FPR resolution, the candidate
draw with many non-members, the server's per-round update attack, federated reference models, the
threat-model boundary of the new attacks, the seed table and the new config errors."""

from __future__ import annotations

import ast
import dataclasses
import inspect
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from fl_privacy.attacks import membership_inference as attacks
from fl_privacy.attacks import update_membership
from fl_privacy.attacks.views import CapturedUpdate, UpdateAuditorView
from fl_privacy.config import load_settings
from fl_privacy.data.federation import build_federation
from fl_privacy.data.images import ImageDataset
from fl_privacy.data.membership_split import audit_split
from fl_privacy.errors import ConfigError
from fl_privacy.evaluation.membership_metrics import membership_metrics
from fl_privacy.lab.pipelines import reference_training
from fl_privacy.report.tables import membership_table, update_table
from fl_privacy.results import write_json
from fl_privacy.training import TrainSettings, train

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --- RMIA on synthetic models whose outputs are set record by record -----------------------------------

class Lookup(nn.Module):
    """A "model" that answers each record (its id in the single pixel) with a fixed true-class probability."""

    def __init__(self, true_probability: np.ndarray) -> None:
        super().__init__()
        p = torch.as_tensor(true_probability, dtype=torch.float64).clamp(1e-6, 1 - 1e-6)
        # two classes, label 0: logits (log p, log(1-p)) give softmax probability p for class 0
        self.table = torch.stack([p.log(), (1 - p).log()], 1).float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.table[x.flatten(1)[:, 0].long()]


def records(ids: np.ndarray) -> ImageDataset:
    return ImageDataset(torch.as_tensor(ids, dtype=torch.float32).reshape(-1, 1, 1, 1),
                        torch.zeros(len(ids), dtype=torch.long))


def rmia_auc(target_p: np.ndarray, reference_p: list[np.ndarray], is_member: np.ndarray, population: int,
             **kwargs) -> float:
    count = len(target_p)
    candidates, pool = records(np.arange(count - population)), records(np.arange(count - population, count))
    references = [attacks.ReferenceModel(Lookup(p), torch.ones(population, dtype=torch.bool))
                  for p in reference_p]
    scores = attacks.rmia_offline(Lookup(target_p), candidates, pool, references, **kwargs)
    assert ((scores >= 0) & (scores <= 1)).all()
    return membership_metrics(scores, is_member)["auc"]


def test_rmia_scores_separable_members_auc_1():
    rng = np.random.default_rng(0)
    n, population = 400, 300
    is_member = rng.permutation(np.arange(n) < n // 2)
    hardness = rng.uniform(0.2, 0.8, n + population)  # what reference models see: no membership in it
    target = hardness.copy()
    target[:n][is_member] = 0.99  # the target is sure of its members, the reference models are not
    references = [hardness * rng.uniform(0.97, 1.03, n + population) for _ in range(2)]
    assert rmia_auc(target, references, is_member, population) > 0.99
    assert rmia_auc(target, references[:1], is_member, population, a=0.5) > 0.99
    # a small, uniform gain on members: exact calibration (a = 1) separates them, the offline
    # correction for a missing IN model (a < 1) assumes a confident target and blurs them
    target[:n][is_member] = hardness[:n][is_member] + 0.15
    assert rmia_auc(target, references, is_member, population, a=1.0) > 0.99


def test_rmia_without_signal_is_chance():
    rng = np.random.default_rng(1)
    n, population = 2000, 1000
    is_member = rng.permutation(np.arange(n) < n // 2)
    target = rng.uniform(0.05, 0.95, n + population)
    references = [rng.uniform(0.05, 0.95, n + population) for _ in range(2)]
    assert abs(rmia_auc(target, references, is_member, population) - 0.5) < 0.04


def test_rmia_corrects_for_record_difficulty_where_loss_cannot():
    """Members are the hard records (low probability everywhere) but the target raises them a little:
    LOSS ranks them last, RMIA (calibrated by the reference models) first."""
    rng = np.random.default_rng(2)
    n, population = 600, 400
    is_member = np.arange(n) < n // 2
    hardness = np.concatenate([rng.uniform(0.1, 0.3, n // 2), rng.uniform(0.6, 0.9, n // 2 + population)])
    target = hardness.copy()
    target[:n // 2] += 0.1
    assert membership_metrics(target[:n], is_member)["auc"] < 0.1  # the confidence (LOSS) attack
    assert rmia_auc(target, [hardness, hardness], is_member, population, a=1.0) > 0.9


# --- metrics: CIs and the smallest measurable FPR ------------------------------------------------------

def test_bootstrap_ci_brackets_the_auc_and_tpr_below_resolution_is_not_reported():
    rng = np.random.default_rng(3)
    is_member = np.arange(1100) < 600  # 500 non-members: 1% FPR measurable, 0.1% not
    scores = rng.normal(size=1100) + is_member
    metrics = membership_metrics(scores, is_member, resamples=200)
    assert metrics["fpr_resolution"] == pytest.approx(1 / 500)
    assert metrics["tpr_at_0.1pct_fpr"] is None and "tpr_at_0.1pct_fpr_ci" not in metrics
    assert metrics["tpr_at_1pct_fpr"] is not None
    low, high = metrics["auc_ci"]
    assert low < metrics["auc"] < high and 0.02 < high - low < 0.15
    assert metrics["tpr_at_1pct_fpr_ci"][0] <= metrics["tpr_at_1pct_fpr"] <= metrics["tpr_at_1pct_fpr_ci"][1]
    assert membership_metrics(scores, is_member)["auc"] == metrics["auc"]  # no resampling, same point


# --- the candidate draw with many non-members ---------------------------------------------------------

LEAKY = ["+experiment=mia_leaky"]


def test_leaky_split_has_500_non_members_and_a_disjoint_population(settings_factory):
    settings = settings_factory(*LEAKY)
    mia = settings.attack.membership
    federation = build_federation(settings.federation)
    split = audit_split(federation, mia.target, None, seed=0, non_members=mia.non_members,
                        population_size=mia.population_size)
    assert (~split.is_member).sum() >= 500 and split.is_member.sum() >= 500
    assert len(split.population) == mia.population_size

    def keys(images: torch.Tensor) -> set[bytes]:
        return {row.numpy().tobytes() for row in images.flatten(1)}

    assert not keys(split.population.images) & keys(split.candidates.images)
    trained = federation.splits.train.subset(np.concatenate(federation.client_indices)).images
    assert not keys(split.population.images) & keys(trained)
    assert not keys(split.candidates.images[~split.is_member]) & keys(trained)
    # one client's records as members, 500 non-members in the same class proportions
    client = audit_split(federation, "client", 0, seed=0, non_members=500)
    assert client.is_member.sum() == len(federation.client_indices[0]) and (~client.is_member).sum() == 500
    member_share = np.bincount(client.members.labels, minlength=10) / client.is_member.sum()
    out_share = np.bincount(client.non_members.labels, minlength=10) / 500
    assert np.abs(member_share - out_share).max() < 0.01
    with pytest.raises(ValueError, match="attack.membership.non_members"):
        audit_split(federation, "client", 0, seed=0, non_members=10_000)


# --- the server's attack on one client's update -------------------------------------------------------

def small_model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10))


@pytest.fixture(scope="module")
def digits():
    from fl_privacy.config.schema import DataSettings
    from fl_privacy.data.datasets import load_splits

    data = load_splits(DataSettings(), seed=0).train
    order = np.random.default_rng(0).permutation(len(data))
    return data.subset(order[:64]), data.subset(order[64:320])


def capture(model: nn.Module, sent: dict[str, torch.Tensor]) -> CapturedUpdate:
    return CapturedUpdate(sent, (1, 28, 28), batch_size=16, num_examples=64,
                          updated_state=model.state_dict(), lr=0.1, local_steps=40)


def test_update_attack_finds_the_clients_records_and_nothing_without_an_update(digits):
    members, outs = digits
    candidates = ImageDataset(torch.cat([members.images, outs.images]),
                              torch.cat([members.labels, outs.labels]))
    is_member = np.arange(len(candidates)) < len(members)
    model = small_model(0)
    sent = {k: v.clone() for k, v in model.state_dict().items()}
    train(model, members, TrainSettings(epochs=30, batch_size=16, lr=0.1, optimizer="sgd"), seed=0)
    view = UpdateAuditorView(capture(model, sent), candidates, small_model)
    scores = update_membership.update_membership_scores(view)
    assert set(scores) == set(update_membership.UPDATE_ATTACKS)
    assert membership_metrics(scores["loss_difference"], is_member)["auc"] > 0.8
    idle = UpdateAuditorView(capture(small_model(0), sent), candidates, small_model)
    assert np.allclose(update_membership.update_membership_scores(idle)["loss_difference"], 0)


# --- reference models with the target's federated recipe ---------------------------------------------

def test_federated_reference_trainer_runs_fedavg_rounds(settings_factory, digits):
    members, _ = digits
    settings = settings_factory(*LEAKY, "simulation.num_clients=4", "strategy.num_rounds=2",
                                "strategy.capture.rounds=[1]",
                                "client.local_epochs=1", "attack.membership.training.recipe=federated")
    fit = reference_training.reference_trainer(settings)
    first, second = small_model(0), small_model(0)
    before = [p.clone() for p in first.parameters()]
    fit(first, members, 7)
    fit(second, members, 7)
    assert any(not torch.equal(a, b) for a, b in zip(before, first.parameters(), strict=True))
    assert all(torch.equal(a, b) for a, b in zip(first.parameters(), second.parameters(), strict=True))
    states = [{"w": torch.tensor([1.0])}, {"w": torch.tensor([4.0])}]
    assert reference_training.fedavg_mean(states, [2, 1])["w"].item() == pytest.approx(2.0)


# --- the threat-model boundary ------------------------------------------------------------------------

TRUTH_NAMES = ("is_member", "member", "members", "membership", "non_members", "truth", "audit")


def test_update_attack_sees_only_its_view():
    assert [f.name for f in dataclasses.fields(UpdateAuditorView)] == ["update", "candidates", "model_fn"]
    for module in (update_membership, attacks):
        for name, function in vars(module).items():
            if inspect.isfunction(function) and function.__module__ == module.__name__:
                assert not set(inspect.signature(function).parameters) & set(TRUTH_NAMES), name
    tree = ast.parse(Path(update_membership.__file__).read_text())
    imported = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert not [m for m in imported if m and m.startswith(("fl_privacy.data.membership_split",
                                                          "fl_privacy.evaluation", "fl_privacy.lab"))]


# --- tables and config ----------------------------------------------------------------------------------

def test_membership_table_means_over_runs(tmp_path, settings_factory):
    config = settings_factory(*LEAKY).model_dump(mode="json")
    for seed, auc in enumerate([0.6, 0.7, 0.8]):
        run = tmp_path / str(seed)
        write_json(run / "summary.json", {"config": {**config, "seed": seed}})
        metrics = {"auc": auc, "balanced_accuracy": 0.6, "tpr_at_1pct_fpr": 0.05, "tpr_at_0.1pct_fpr": None,
                   "num_non_members": 500, "fpr_resolution": 0.002}
        write_json(run / "mia" / "scores.json", {"attacks": {"rmia": metrics}, "target_accuracy": 0.9})
    table = membership_table(tmp_path, [], over_runs=True).splitlines()
    # every run's AUC, then the mean with its bootstrap interval inside [0, 1] (a t interval over 3 seeds
    # would be 0.700 ± 0.248); the equal TPRs have no interval
    assert table[2].startswith("| rmia | 3 | 0.600, 0.700, 0.800 | 0.700 [0.600, 0.800] | 0.050 | n/a | "
                               "500 |")
    assert "n/a" in membership_table(tmp_path, ["seed"]).splitlines()[2]


def test_update_table_averages_each_round_over_runs(tmp_path):
    def metrics(auc: float) -> dict:
        return {"auc": auc, "tpr_at_1pct_fpr": None}

    for seed, auc in enumerate([0.7, 0.9]):
        rounds = [{"round": r, "attacks": {"loss_difference": metrics(auc - 0.1 * r)}} for r in (1, 2)]
        write_json(tmp_path / str(seed) / "mia" / "updates.json",
                   {"rounds": rounds, "final_model_loss": metrics(0.5), "num_members": 50,
                    "num_non_members": 500})
    lines = update_table(tmp_path).splitlines()
    assert lines[2].startswith("| 1 | 2 | 0.700 [0.600, 0.800] |")
    assert lines[3].startswith("| 2 | 2 | 0.600 [0.500, 0.700] |")
    assert lines[4].startswith("| final global model, LOSS | 2 | 0.500 |") and "n/a" in lines[4]
    assert lines[-1].endswith("[(50, 500)]")


@pytest.mark.parametrize(("override", "key"), [
    ("attack.membership.rmia.a=1.5", "attack.membership.rmia.a"),
    ("attack.membership.rmia.num_reference=0", "attack.membership.rmia.num_reference"),
    ("attack.membership.training.recipe=magic", "attack.membership.training.recipe"),
    ("strategy=fedavg_warmup", "attack.membership.update_attack.after_run"),
    ("client.examples_per_round=10", "attack.membership.update_attack.after_run"),
])
def test_bad_leaky_keys_are_named(cfg_factory, override, key):
    with pytest.raises(ConfigError) as error:
        load_settings(cfg_factory(*LEAKY, override))
    assert error.value.key == key


def test_a_diverged_model_is_named_not_scored():
    """NaN scores (a model that diverged) end the audit with a clear error instead of sklearn's."""
    from fl_privacy.evaluation.dp_audit import audit_epsilon
    from fl_privacy.evaluation.membership_metrics import UnscorableModel, membership_metrics

    scores, members = np.array([0.1, np.nan, 0.3, 0.2]), np.array([True, False, True, False])
    with pytest.raises(UnscorableModel, match="1 of 4 membership scores are not finite"):
        membership_metrics(scores, members)
    with pytest.raises(UnscorableModel):
        audit_epsilon(scores, members, 1e-5, 0.95, [1])
