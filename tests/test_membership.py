"""Membership inference: metrics with known answers, attacks on an overfit model, the audit's record roles,
the threat-model boundary, config errors, and one tiny end-to-end audit through the entry point."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from fl_privacy.attacks import membership_inference as attacks
from fl_privacy.attacks.views import AuditorView
from fl_privacy.cli import commands
from fl_privacy.config import load_settings
from fl_privacy.config.schema import DataSettings
from fl_privacy.data.datasets import load_splits
from fl_privacy.data.federation import build_federation
from fl_privacy.data.images import ImageDataset
from fl_privacy.data.membership_split import audit_split
from fl_privacy.errors import ConfigError
from fl_privacy.evaluation.membership_metrics import membership_metrics
from fl_privacy.lab.pipelines import audit_pipeline, reference_training
from fl_privacy.report.tables import membership_table
from fl_privacy.results import write_json
from fl_privacy.training import TrainSettings, train

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --- metrics on synthetic scores ------------------------------------------------------------------------

def test_perfectly_separable_scores_give_auc_1_and_full_tpr_at_any_fpr():
    is_member = np.array([True] * 500 + [False] * 1500)
    scores = np.where(is_member, 2.0, 0.0) + np.random.default_rng(0).uniform(0, 1, 2000)
    metrics = membership_metrics(scores, is_member)
    assert metrics["auc"] == 1.0 and metrics["balanced_accuracy"] == 1.0
    assert metrics["tpr_at_1pct_fpr"] == 1.0 and metrics["tpr_at_0.1pct_fpr"] == 1.0
    assert metrics["num_members"] == 500 and metrics["fpr_resolution"] == pytest.approx(1 / 1500)
    assert membership_metrics(-scores, is_member)["auc"] == 0.0


def test_identical_distributions_give_chance():
    rng = np.random.default_rng(1)
    is_member = rng.permutation(np.arange(20000) < 10000)
    metrics = membership_metrics(rng.normal(size=20000), is_member)
    assert abs(metrics["auc"] - 0.5) < 0.02
    assert metrics["balanced_accuracy"] < 0.52
    assert metrics["tpr_at_1pct_fpr"] < 0.02


def test_metrics_of_a_small_hand_worked_example():
    # members 0.9, 0.8, 0.3; non-members 0.7, 0.2, 0.1, 0.05: 11 of 12 pairs ordered right; no false
    # positive down to 0.8 (TPR 2/3); threshold 0.3 gives TPR 1 at FPR 1/4, balanced accuracy 0.875
    scores = np.array([0.9, 0.8, 0.3, 0.7, 0.2, 0.1, 0.05])
    is_member = np.array([1, 1, 1, 0, 0, 0, 0], bool)
    metrics = membership_metrics(scores, is_member)
    assert metrics["auc"] == pytest.approx(11 / 12)
    assert metrics["tpr_at_zero_fpr"] == pytest.approx(2 / 3)
    # 4 non-members resolve no FPR below 1/4: TPR at 1% and 0.1% FPR are not measured
    assert metrics["tpr_at_1pct_fpr"] is None and metrics["tpr_at_0.1pct_fpr"] is None
    assert metrics["balanced_accuracy"] == pytest.approx(0.875)


def test_metric_scores_match_their_formulas():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]])
    labels = torch.tensor([0, 2])
    probs = logits.softmax(1)
    assert np.allclose(attacks.loss_score(logits, labels), -F.cross_entropy(logits, labels, reduction="none"))
    assert np.allclose(attacks.confidence_score(logits, labels), [probs[0, 0], 1 / 3])
    assert np.allclose(attacks.entropy_score(logits, labels)[1], -np.log(3), atol=1e-6)
    p = probs[0]
    mentr = -(1 - p[0]) * torch.log(p[0]) - p[1] * torch.log(1 - p[1]) - p[2] * torch.log(1 - p[2])
    assert attacks.modified_entropy_score(logits, labels)[0] == pytest.approx(-mentr.item(), rel=1e-5)
    scaled = attacks.scaled_confidence(logits, labels)
    assert scaled[0].item() == pytest.approx(torch.logit(p[0]).item(), rel=1e-5)
    assert scaled[1].item() == pytest.approx(np.log(0.5), rel=1e-5)


# --- attacks on a deliberately overfit tiny model ------------------------------------------------------

SETTINGS = TrainSettings(epochs=40, batch_size=32, lr=0.01, optimizer="adam")


def tiny_model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10))


def fit(model: nn.Module, records: ImageDataset, seed: int) -> None:
    train(model, records, SETTINGS, seed)


@pytest.fixture(scope="module")
def overfit(tmp_path_factory):
    """A tiny MLP trained to memorise 64 real digits; 64 other digits are non-members, 256 the population."""
    data = load_splits(DataSettings(name="mnist_offline", test_fraction=0.2, exclude_classes=[], root=None,
                                    download=False), seed=0).train
    order = np.random.default_rng(0).permutation(len(data))
    members, outs = data.subset(order[:64]), data.subset(order[64:128])
    population = data.subset(order[128:384])
    target = tiny_model(0)
    fit(target, members, 0)
    shuffle = np.random.default_rng(1).permutation(128)
    candidates = ImageDataset(torch.cat([members.images, outs.images]),
                              torch.cat([members.labels, outs.labels])).subset(shuffle)
    is_member = (np.arange(128) < 64)[shuffle]
    references = attacks.train_reference_models(tiny_model, fit, population, 4, seed=3)
    return target, candidates, population, is_member, references


def test_loss_and_lira_rank_members_of_an_overfit_model_first(overfit):
    target, candidates, _, is_member, references = overfit
    loss = attacks.loss_score(attacks.model_logits(target, candidates), candidates.labels)
    lira = attacks.lira_offline(target, candidates, references)
    assert membership_metrics(loss, is_member)["auc"] > 0.8
    assert membership_metrics(lira, is_member)["auc"] > 0.8
    assert membership_metrics(-lira, is_member)["auc"] < 0.2


def test_shadow_attack_beats_chance_on_an_overfit_model(overfit):
    target, candidates, population, is_member, references = overfit
    scores = attacks.shadow_attack(target, candidates, population, references[:2])
    assert ((scores >= 0) & (scores <= 1)).all()
    assert membership_metrics(scores, is_member)["auc"] > 0.7


def test_reference_models_take_complementary_halves(overfit):
    _, candidates, population, _, references = overfit
    assert all(r.population_in.sum() == len(population) // 2 for r in references)
    assert torch.equal(references[0].population_in, ~references[1].population_in)
    assert not torch.equal(references[0].population_in, references[2].population_in)
    online = attacks.train_reference_models(tiny_model, fit, population.subset(np.arange(32)), 2, seed=4,
                                            candidates=candidates)
    trained = torch.stack([r.candidates_in for r in online])
    assert (trained.sum(0) == 1).all()  # every candidate is IN for exactly one of the two


# --- who plays which role --------------------------------------------------------------------------------

def test_audit_records_roles(settings_factory):
    federation = build_federation(settings_factory("+experiment=mia").federation)
    plain = build_federation(settings_factory("+experiment=fedavg_noniid").federation)
    assert len(plain.holdout_indices) == 0  # without the audit the clients' data is unchanged
    assert sum(map(len, plain.client_indices)) == pytest.approx(2 * len(federation.holdout_indices), abs=10)
    trained = np.concatenate([federation.warmup_indices, *federation.client_indices])
    assert not np.isin(federation.holdout_indices, trained).any()
    audit = audit_split(federation, "client", 3, seed=0)
    members = federation.splits.train.subset(federation.client_indices[3])

    def keys(images: torch.Tensor) -> set[bytes]:
        return {row.numpy().tobytes() for row in images.flatten(1)}

    candidates = audit.candidates.images
    assert keys(candidates[audit.is_member]) <= keys(members.images)
    assert not keys(candidates[~audit.is_member]) & keys(federation.splits.train.subset(trained).images)
    assert not keys(audit.population.images) & keys(candidates)
    assert audit.is_member.sum() == (~audit.is_member).sum() > 150
    assert set(audit.candidates.labels.tolist()) == {3}
    assert 0 < audit.is_member[:50].mean() < 1  # shuffled, not members first


# --- the threat-model boundary -------------------------------------------------------------------------

TRUTH = re.compile(r"^(is_member|members?|membership|non_members?|truth|ground_truth|in_mask|secret|audit)$")


def test_no_attack_function_accepts_membership_truth():
    functions = [item for name, item in vars(attacks).items()
                 if inspect.isfunction(item) and item.__module__ == attacks.__name__]
    # the lab's helpers that build the auditor's inputs, and the audit command's settings
    functions += [audit_pipeline.target_model, reference_training.reference_trainer,
                  audit_pipeline.last_client_update, commands.run_settings]
    assert len(functions) >= 15
    for function in functions:
        for parameter in inspect.signature(function).parameters:
            assert not TRUTH.match(parameter), f"{function.__name__} takes `{parameter}`"
    # the auditor's whole input is an AuditorView: none of its fields is the truth
    fields = [field.name for field in dataclasses.fields(AuditorView)]
    assert fields == ["target", "candidates", "population", "model_fn", "trainer"]
    assert not [name for name in fields if TRUTH.match(name)]
    assert list(inspect.signature(attacks.membership_scores).parameters) == ["view", "settings"]


def test_attack_modules_import_neither_data_nor_evaluation():
    """The auditor's code (attacks.membership_inference and the view it receives) reaches neither the data
    loaders and samplers, the training loop (its trainer comes in the view), the evaluation nor the lab;
    `data.images` (the record type) is the one data module it may use."""
    forbidden = ("fl_privacy.data.datasets", "fl_privacy.data.federation", "fl_privacy.data.partition",
                 "fl_privacy.data.membership_split", "fl_privacy.evaluation", "fl_privacy.training",
                 "fl_privacy.lab")
    for module in (attacks, sys.modules[AuditorView.__module__]):
        path = Path(module.__file__)
        tree = ast.parse(path.read_text())
        names = [n.module if isinstance(n, ast.ImportFrom) else a.name for n in ast.walk(tree)
                 if isinstance(n, ast.Import | ast.ImportFrom)
                 for a in (n.names if isinstance(n, ast.Import) else [n])]
        assert not [n for n in names if n and n.startswith(forbidden)], path.name


def test_scores_follow_the_records_not_their_position(overfit):
    """Shuffling the candidates shuffles the scores: the attacks cannot read membership off the order."""
    target, candidates, population, _, references = overfit
    order = np.random.default_rng(5).permutation(len(candidates))
    plain = {"loss": attacks.loss_score(attacks.model_logits(target, candidates), candidates.labels),
             "lira_offline": attacks.lira_offline(target, candidates, references[:2]),
             "shadow": attacks.shadow_attack(target, candidates, population, references[:2])}
    shuffled = candidates.subset(order)
    again = {"loss": attacks.loss_score(attacks.model_logits(target, shuffled), shuffled.labels),
             "lira_offline": attacks.lira_offline(target, shuffled, references[:2]),
             "shadow": attacks.shadow_attack(target, shuffled, population, references[:2])}
    for name in plain:
        assert np.allclose(plain[name][order], again[name], atol=1e-6), name


# --- config errors ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("override", "key"), [
    ("attack.membership.target=everyone", "attack.membership.target"),
    ("attack.membership.attacks=[loss,magic]", "attack.membership.attacks.1"),  # the bad entry
    ("attack.membership.target_partition=10", "attack.membership.target_partition"),
    ("data.holdout_fraction=1.0", "data.holdout_fraction"),
    ("attack.membership.num_reference=1", "attack.membership.num_reference"),
    ("attack.membership.training.epochs=0", "attack.membership.training.epochs"),
    ("strategy=fedavg_warmup attack.membership.target_model=client", "attack.membership.target_model"),
])
def test_bad_mia_keys_are_named(cfg_factory, override, key):
    cfg = cfg_factory("+experiment=mia", *override.split())
    with pytest.raises(ConfigError) as error:
        load_settings(cfg)
    assert error.value.key == key


def test_membership_command_refuses_to_change_the_holdout(settings_factory, tmp_path):
    """The audit command takes only `attack.membership.*` overrides: the holdout is the run's."""
    recorded = settings_factory("+experiment=mia").model_dump(mode="json")
    write_json(tmp_path / "summary.json", {"config": recorded})
    with pytest.raises(ConfigError, match="data.holdout_fraction") as error:
        commands.run_settings(tmp_path, "attack.membership", ["data.holdout_fraction=0.2"])
    assert error.value.key == "data.holdout_fraction"
    settings = commands.run_settings(tmp_path, "attack.membership", ["attack.membership.target=all"])
    assert settings.attack.membership.target == "all" and settings.data.holdout_fraction == 0.5


# --- one tiny audit through the entry point ----------------------------------------------------------------

@pytest.fixture(scope="module")
def mia_run(farm_runs):
    return farm_runs.run_dir("mia_tiny")


@pytest.mark.simulation
@pytest.mark.farm("mia_tiny")
def test_tiny_run_writes_membership_scores_roc_and_summary(mia_run):
    scores = json.loads((mia_run / "mia" / "scores.json").read_text())
    assert set(scores["attacks"]) == set(attacks.ATTACKS)
    assert scores["num_members"] == scores["num_non_members"] > 100
    for metrics in scores["attacks"].values():
        assert 0 <= metrics["auc"] <= 1 and 0.5 <= metrics["balanced_accuracy"] <= 1
        # ~190 non-members: 1% FPR is measured, 0.1% is not
        assert metrics["tpr_at_0.1pct_fpr"] is None and 0 <= metrics["tpr_at_1pct_fpr"] <= 1
        assert metrics["fpr_resolution"] == 1 / metrics["num_non_members"]
        assert metrics["auc_ci"][0] <= metrics["auc"] <= metrics["auc_ci"][1]
    assert 0 < scores["target_accuracy"] <= 1
    assert (mia_run / "mia" / "roc.png").stat().st_size > 5000
    summary = json.loads((mia_run / "summary.json").read_text())
    assert summary["mia"]["attacks"]["loss"] == scores["attacks"]["loss"]
    written = json.loads((mia_run / "mia" / "attack_scores.json").read_text())["scores"]
    assert len(written["loss"]) == scores["num_members"] * 2


@pytest.mark.simulation
@pytest.mark.farm("mia_tiny")
def test_tiny_run_attacks_each_captured_update_of_the_client(mia_run):
    updates = json.loads((mia_run / "mia" / "updates.json").read_text())
    assert [r["round"] for r in updates["rounds"]] == [1, 2]
    assert updates["num_non_members"] == 120 and updates["num_members"] > 100
    for entry in [*updates["rounds"], {"attacks": {"final": updates["final_model_loss"]}}]:
        for metrics in entry["attacks"].values():
            assert 0 <= metrics["auc"] <= 1 and metrics["num_non_members"] == 120
    assert (mia_run / "mia" / "updates_auc.png").stat().st_size > 5000
    assert json.loads((mia_run / "summary.json").read_text())["mia_updates"]["rounds"] == updates["rounds"]


@pytest.mark.simulation
@pytest.mark.farm("mia_tiny")
def test_membership_command_audits_the_client_model(mia_run, monkeypatch):
    views = []
    real_scores = audit_pipeline.membership_scores

    def spy(*args, **kwargs):
        views.append(args[0])
        return real_scores(*args, **kwargs)

    monkeypatch.setattr(audit_pipeline, "membership_scores", spy)
    code = commands.main(["audit", str(mia_run), "attack.membership.target_model=client",
                          "attack.membership.attacks=[loss,entropy]"])
    assert code == 0
    # the auditor got its view and nothing else: the candidates, never who is a member
    assert len(views) == 1 and isinstance(views[0], AuditorView)
    scores = json.loads((mia_run / "mia" / "scores.json").read_text())
    assert len(views[0].candidates) == scores["num_members"] + scores["num_non_members"]
    assert scores["target_model"] == "client" and set(scores["attacks"]) == {"loss", "entropy"}
    by = ["attack.membership.target_model", "simulation.num_clients"]
    table = membership_table(mia_run, by).splitlines()
    assert len(table) == 4 and table[2].startswith("| client | 3 | loss | ")
    assert commands.main(["audit", str(mia_run), "attack.membership.target=nobody"]) == 2
