"""The per-batch lowest-matching-loss attacker, the replay of mini-batch local training, per-round attack
budgets and per-cell success rates (issue 16)."""

from __future__ import annotations

import inspect

import pytest
import torch
from test_gradient_inversion import SHAPE, dlg_lenet
from torch.nn import functional as F

from fl_privacy.attacks import CapturedUpdate, DLGConfig, InvertingConfig, restore_labels
from fl_privacy.attacks.best_matching import BestMatchingConfig, best_matching
from fl_privacy.attacks.gradient_inversion import _Victim, matching_loss, replay
from fl_privacy.attacks.registry import attack_options
from fl_privacy.config import compose_settings
from fl_privacy.data.images import ImageDataset
from fl_privacy.evaluation.reconstruction import psnr
from fl_privacy.evaluation.success_rates import Cell, best_candidate_psnr
from fl_privacy.lab.pipelines.inversion_pipeline import per_round_budget
from fl_privacy.results import save_torch
from fl_privacy.training import TrainSettings, shuffled_batches, train
from strategies.gradient_capture import CaptureSchedule

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def gradient_of(model: torch.nn.Module, data: ImageDataset) -> CapturedUpdate:
    names = [name for name, _ in model.named_parameters()]
    grads = torch.autograd.grad(F.cross_entropy(model(data.images), data.labels), list(model.parameters()))
    return CapturedUpdate(model.state_dict(), SHAPE, batch_size=len(data), num_examples=len(data),
                          gradient=dict(zip(names, grads, strict=True)))


def test_best_matching_keeps_the_candidate_with_the_lowest_own_matching_loss(mnist):
    model, digit = dlg_lenet(1), mnist.subset([1])
    captured = gradient_of(model, digit)
    config = BestMatchingConfig(DLGConfig(iterations=5, log_every=0),
                                InvertingConfig(iterations=30, restarts=2, log_every=0))
    result = best_matching(model, captured, config)
    assert len(result.candidates) == len(result.restart_losses) == 3  # DLG, then two restarts
    assert result.loss == min(result.restart_losses)
    chosen = result.restart_losses.index(result.loss)
    assert torch.equal(result.images, result.candidates[chosen])
    # the losses are the attacker's own objective, recomputable from the view alone
    own = matching_loss(model, captured, result.images, result.labels)
    assert own == pytest.approx(result.loss, abs=1e-6)
    assert float(psnr(result.images, digit.images)) > 30  # DLG on LeNet at init finds the digit
    assert list(inspect.signature(best_matching).parameters) == ["model", "payload", "config"]


def test_replay_with_the_clients_order_reproduces_its_mini_batch_update(mnist):
    """The replay is exact: given the client's shuffling, 2 epochs of mini-batches of 3 on 5 examples."""
    model, data = dlg_lenet(0), mnist.subset([0, 1, 2, 3, 4])
    recipe = TrainSettings(epochs=2, batch_size=3, lr=0.05, optimizer="sgd")
    client = dlg_lenet(0)
    stats = train(client, data, recipe, seed=7)
    captured = CapturedUpdate(model.state_dict(), SHAPE, batch_size=3, num_examples=5,
                              updated_state=client.state_dict(), lr=0.05, local_steps=stats.steps)
    victim = _Victim(model, captured)
    generator = torch.Generator().manual_seed(7)
    orders = [torch.randperm(5, generator=generator) for _ in range(2)]
    delta = victim.local_delta(data.images, data.labels, 0.05, stats.steps, 3, orders)
    observed = captured.weight_delta(victim.names)
    assert all(torch.allclose(d, o, atol=1e-5) for d, o in zip(delta, observed, strict=True))
    # the attacker's own guess of the order (a random draw) differs, so the replay is not exact there
    guessed = replay(victim, captured, torch.Generator().manual_seed(1))(data.images, data.labels)
    assert not all(torch.allclose(d, o, atol=1e-5) for d, o in zip(guessed, observed, strict=True))
    assert len(list(shuffled_batches(data, 3, 2, torch.Generator()))) == stats.steps == 4


def test_best_matching_on_a_fedavg_update_searches_the_mini_batch_order(mnist):
    model, data = dlg_lenet(2), mnist.subset([10, 11, 12, 13])
    client = dlg_lenet(2)
    stats = train(client, data, TrainSettings(epochs=1, batch_size=2, lr=0.01, optimizer="sgd"), seed=0)
    captured = CapturedUpdate(model.state_dict(), SHAPE, batch_size=2, num_examples=4,
                              updated_state=client.state_dict(), lr=0.01, local_steps=stats.steps)
    config = BestMatchingConfig(DLGConfig(iterations=2, log_every=0),
                                InvertingConfig(iterations=3, restarts=3, log_every=0))
    result = best_matching(model, captured, config)
    assert len(result.candidates) == 4 and result.loss == min(result.restart_losses)
    assert torch.equal(result.labels, restore_labels(model, captured))  # restored, never the truth


def test_best_settings_come_from_the_attack_config():
    settings = compose_settings(["attack.gradient_inversion.name=best",
                                 "attack.gradient_inversion.restarts=3",
                                 "attack.gradient_inversion.best_dlg_iterations=7"])
    options = attack_options(settings.attack.gradient_inversion)
    assert isinstance(options, BestMatchingConfig)
    assert options.dlg.iterations == 7 and options.dlg.lr == 1.0 and options.inverting.restarts == 3


def test_per_round_budget_takes_captures_in_partition_order_until_enough_images(tmp_path):
    state = dlg_lenet(0).state_dict()
    paths = []
    for round_number in (1, 2):
        for partition in range(4):
            path = tmp_path / f"round_{round_number:03d}" / f"partition_{partition:02d}.pt"
            meta = {"input_shape": list(SHAPE), "batch_size": 4, "num_examples": 4, "lr": 0.1,
                    "local_steps": 1}
            save_torch(path, {"global_state": state, "metadata": meta, "gradient": state})
            paths.append(path)
    kept = per_round_budget(paths, images=6)
    assert [(p.parent.name, p.stem) for p in kept] == [
        ("round_001", "partition_00"), ("round_001", "partition_01"),
        ("round_002", "partition_00"), ("round_002", "partition_01")]


def test_captured_rounds_can_ask_for_an_example_count():
    schedule = CaptureSchedule((1,), update_mode="fedavg", batch_size=8, examples=16)
    assert schedule.request(1) == {"update-mode": "fedavg", "batch-size": 8, "examples": 16}
    assert schedule.request(2) == {}


def test_cell_rates_label_the_best_candidate_psnr_as_an_upper_bound(mnist):
    truth = mnist.subset([0, 1]).images
    candidates = [torch.zeros_like(truth), truth.clone()]
    upper = best_candidate_psnr(candidates, truth)
    assert upper == [100.0, 100.0] and best_candidate_psnr(None, truth) is None
    cell = Cell()
    baselines = {"class_mean": {"psnr": [10.0, 10.0], "ssim": [0.3, 0.3]}}
    cell.add({"images": {"psnr": [5.0, 6.0], "ssim": [0.1, 0.2]}}, baselines, upper)
    rates = (cell + Cell()).rates()
    assert rates["recognisable"]["hits"] == 0 and rates["recognisable"]["n"] == 2
    assert rates["upper_bound_best_candidate_by_psnr"]["median"] == 100.0
