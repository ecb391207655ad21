"""Inverting Gradients at published settings: the batched engine equals the one-capture loop, early stops
are per problem and reported, labels come from the chosen estimator, and the keys fail before a run."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from fl_privacy.attacks.gradient_inversion import InvertingConfig, inverting_gradients
from fl_privacy.attacks.inverting_engine import _weight_groups, invert_gradients_batched, invert_many
from fl_privacy.attacks.label_restoration import bias_corrected_counts, counts_to_labels, restore_labels
from fl_privacy.attacks.views import CapturedUpdate
from fl_privacy.config import load_settings
from fl_privacy.errors import ConfigError
from fl_privacy.models import SeedCNN

SHAPE = (1, 12, 12)
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _capture(model: torch.nn.Module, seed: int, size: int = 3) -> CapturedUpdate:
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(size, *SHAPE, generator=generator)
    labels = torch.randint(0, 10, (size,), generator=generator)
    names = [name for name, _ in model.named_parameters()]
    grads = torch.autograd.grad(F.cross_entropy(model(images), labels), list(model.parameters()))
    return CapturedUpdate({k: v.clone() for k, v in model.state_dict().items()}, SHAPE, batch_size=size,
                          num_examples=size, gradient=dict(zip(names, grads, strict=True)))


def _models(count: int) -> list[torch.nn.Module]:
    models = []
    for seed in range(count):
        torch.manual_seed(seed)
        models.append(SeedCNN(SHAPE, 10, dropout=0.0).eval())
    return models


@pytest.mark.parametrize("shared_weights,tv_weights", [(True, (0.2,)), (False, (0.2,)), (True, (0.2, 1e-4)),
                                                       (False, (1e-4, 0.2))])
def test_batched_engine_equals_the_loop_capture_by_capture(shared_weights, tv_weights):
    models = _models(2)
    owners = [models[0]] * 3 if shared_weights else [models[0], models[1], models[0]]
    captures = [_capture(owner, seed) for seed, owner in enumerate(owners)]
    config = InvertingConfig(iterations=4, restarts=2, tv_weights=tv_weights, log_every=0)
    batched = invert_gradients_batched(models[0], captures, config)
    for capture, result in zip(captures, batched, strict=True):
        loop = inverting_gradients(models[0], capture, config)
        assert torch.allclose(result.images, loop.images, atol=1e-5)
        assert result.restart_losses == pytest.approx(loop.restart_losses, abs=1e-5)
        assert torch.equal(result.labels, loop.labels) and result.iterations_run == (4,) * 2 * len(tv_weights)
        assert result.tv_weight == loop.tv_weight


def test_several_tv_weights_keep_the_weight_with_the_lowest_matching_loss_per_capture():
    model = _models(1)[0]
    chosen = set()
    for seed in range(4):
        capture = _capture(model, seed)
        alone = {w: inverting_gradients(model, capture, InvertingConfig(iterations=6, restarts=1,
                                                                        tv_weights=(w,), log_every=0))
                 for w in (3.0, 1e-4)}
        both = inverting_gradients(model, capture, InvertingConfig(iterations=6, restarts=1,
                                                                   tv_weights=(3.0, 1e-4), log_every=0))
        winner = min(alone, key=lambda w: alone[w].loss)  # each weight from the same starts as alone
        assert both.tv_weight == winner and torch.equal(both.images, alone[winner].images)
        assert both.restart_losses == (alone[3.0].loss, alone[1e-4].loss)
        chosen.add(winner)
    assert chosen == {1e-4}  # a TV that flattens the images matches the gradient worse: never chosen


def test_invert_many_unbatched_runs_the_one_capture_loop_in_order(monkeypatch):
    from fl_privacy.attacks import inverting_engine

    def no_batching(*_args, **_kwargs):
        raise AssertionError("batched=False must not batch")

    monkeypatch.setattr(inverting_engine, "invert_gradients_batched", no_batching)
    models = _models(2)
    captures = [_capture(models[owner], seed) for seed, owner in enumerate([0, 1, 0])]
    config = InvertingConfig(iterations=3, restarts=1, tv_weights=(0.2,), log_every=0)
    with pytest.raises(AssertionError, match="must not batch"):
        invert_many(models[0], captures, config)
    results = invert_many(models[0], captures, config, batched=False)
    for capture, result in zip(captures, results, strict=True):
        assert torch.equal(result.images, inverting_gradients(models[0], capture, config).images)


def test_invert_many_batches_each_global_model_apart_and_keeps_the_order():
    models = _models(2)
    captures = [_capture(models[owner], seed) for seed, owner in enumerate([0, 1, 0, 1])]
    names = [name for name, _ in models[0].named_parameters()]
    assert _weight_groups(captures, names) == [[0, 2], [1, 3]]
    config = InvertingConfig(iterations=3, restarts=1, tv_weights=(0.2,), log_every=0)
    for capture, result in zip(captures, invert_many(models[0], captures, config), strict=True):
        loop = inverting_gradients(models[0], capture, config)
        assert torch.allclose(result.images, loop.images, atol=1e-5)


def test_early_stop_on_a_plateau_is_per_problem_and_reported():
    model = _models(1)[0]
    captures = [_capture(model, seed) for seed in range(2)]
    # a 90% relative improvement within 3 steps never happens: every problem stops after 3 steps
    config = InvertingConfig(iterations=40, restarts=1, patience=3, tolerance=0.9, log_every=0)
    for result in invert_many(model, captures, config):
        assert result.iterations_run == (4,)  # the first step sets the best, three more without improving
    assert inverting_gradients(model, captures[0], config).iterations_run == (4,)
    unstopped = InvertingConfig(iterations=6, restarts=1, log_every=0)
    assert invert_many(model, captures[:1], unstopped)[0].iterations_run == (6,)


def test_bias_corrected_labels_are_the_estimator_the_attack_uses():
    model = _models(1)[0]
    capture = _capture(model, 5, size=6)
    _, bias_name = "head.weight", "head.bias"
    expected = counts_to_labels(bias_corrected_counts(capture.effective_gradient([bias_name])[0], 6))
    assert torch.equal(restore_labels(model, capture, "bias_corrected"), expected)
    config = InvertingConfig(iterations=1, restarts=1, label_estimator="bias_corrected", log_every=0)
    assert torch.equal(invert_many(model, [capture], config)[0].labels, expected)


@pytest.mark.parametrize("overrides,key", [
    (("attack.gradient_inversion.name=inverting", "attack.gradient_inversion.iterations=100",
      "attack.gradient_inversion.early_stop_patience=100"), "attack.gradient_inversion.early_stop_patience"),
    (("attack.gradient_inversion.name=dlg", "attack.gradient_inversion.early_stop_patience=5"),
     "attack.gradient_inversion.early_stop_patience"),
    (("attack.gradient_inversion.name=dlg", "attack.gradient_inversion.engine=batched"),
     "attack.gradient_inversion.engine"),
    (("attack.gradient_inversion.name=inverting", "attack.gradient_inversion.engine=batched",
      "attack.gradient_inversion.bound=sigmoid"), "attack.gradient_inversion.bound"),
    (("attack.gradient_inversion.name=dlg", "attack.gradient_inversion.label_estimator=bias_corrected"),
     "attack.gradient_inversion.label_estimator"),
    (("attack.gradient_inversion.restarts=0",), "attack.gradient_inversion.restarts"),
    (("attack.gradient_inversion.iterations=0",), "attack.gradient_inversion.iterations"),
    (("attack.gradient_inversion.tv_weight=[]",), "attack.gradient_inversion.tv_weight"),
    (("attack.gradient_inversion.tv_weight=[0.2,-1]",), "attack.gradient_inversion.tv_weight.1"),
])
def test_budgets_and_engines_that_cannot_be_honoured_fail_naming_the_key(cfg_factory, overrides, key):
    with pytest.raises(ConfigError) as caught:
        load_settings(cfg_factory("strategy=gradient_capture", *overrides))
    assert caught.value.key == key


@pytest.mark.parametrize("preset,tv_weight", [
    ("realism", [0.2]), ("realism_b1", [0.2]), ("realism_iid", [0.2]),
    ("realism_anchor", [0.2, 1e-4]),  # LeNet-sigmoid: the published TV alone flattens the images (docs §7)
])
def test_realism_presets_default_to_published_inverting_gradients(cfg_factory, preset, tv_weight):
    attack = load_settings(cfg_factory(f"+experiment={preset}")).attack.gradient_inversion
    assert (attack.name, attack.engine, attack.iterations, attack.lr, attack.tv_weight,
            attack.label_estimator, attack.bound) == ("inverting", "auto", 24000, 0.1, tv_weight,
                                                      "bias_corrected", "clamp")


@pytest.mark.parametrize("overrides,engine", [
    (("device=cpu",), "loop"),
    (("device=cuda",), "batched"),
    (("device=cuda", "attack.gradient_inversion.bound=sigmoid"), "loop"),
    (("device=cuda", "attack.gradient_inversion.name=dlg",
      "attack.gradient_inversion.label_estimator=counts"), "loop"),
    (("device=cpu", "attack.gradient_inversion.engine=batched"), "batched"),
    (("device=cuda", "attack.gradient_inversion.engine=loop"), "loop"),
])
def test_engine_auto_batches_on_cuda_only_the_problems_the_batched_engine_takes(cfg_factory, overrides,
                                                                                engine):
    from fl_privacy.lab.pipelines.inversion_pipeline import chosen_engine

    settings = load_settings(cfg_factory("+experiment=realism", *overrides))  # CUDA is checked in preflight
    assert chosen_engine(settings) == engine


def test_the_lab_runs_a_rounds_captures_through_the_batched_engine(tmp_path, settings_factory):
    from fl_privacy.lab.pipelines.inversion_pipeline import reconstruct_captures
    from fl_privacy.models import build_model
    from fl_privacy.results import load_tensors, save_torch
    from fl_privacy.run_layout import CAPTURES, round_file

    settings = settings_factory("+experiment=realism", "attack.gradient_inversion.engine=batched",
                                "attack.gradient_inversion.iterations=2",
                                "attack.gradient_inversion.early_stop_patience=1",
                                "attack.gradient_inversion.early_stop_tolerance=0.9")
    torch.manual_seed(0)
    model = build_model(settings.model, SHAPE, 10).eval()
    for partition in range(2):
        capture = _capture(model, partition)
        meta = {"round": 1, "partition": partition, "mode": "fedsgd", "lr": 0.1, "local_steps": 1,
                "num_examples": 3, "batch_size": 3, "input_shape": list(SHAPE), "num_classes": 10}
        save_torch(round_file(tmp_path, CAPTURES, 1, partition, ".pt"),
                   {"global_state": capture.global_state, "metadata": meta, "gradient": capture.gradient})
    written = reconstruct_captures(tmp_path, settings)
    loop = InvertingConfig(iterations=2, restarts=1, tv_weights=(0.2,), label_estimator="bias_corrected",
                           patience=1, tolerance=0.9, log_every=0)
    for partition, path in enumerate(written):
        record = load_tensors(path)
        expected = inverting_gradients(model, _capture(model, partition), loop)
        assert (record["iterations_run"], record["attack"], record["tv_weight"]) == ([2], "inverting", 0.2)
        assert torch.allclose(record["images"], expected.images, atol=1e-5)


def test_invert_many_sends_fedavg_captures_through_the_replay_loop_in_order():
    model = _models(1)[0]
    client = _models(1)[0]
    generator = torch.Generator().manual_seed(9)
    images, labels = torch.rand(2, *SHAPE, generator=generator), torch.tensor([3, 7])
    optimizer = torch.optim.SGD(client.parameters(), lr=0.1)
    optimizer.zero_grad()
    F.cross_entropy(client(images), labels).backward()
    optimizer.step()
    weights = CapturedUpdate({k: v.clone() for k, v in model.state_dict().items()}, SHAPE, batch_size=2,
                             num_examples=2, updated_state=client.state_dict(), lr=0.1, local_steps=1)
    gradient = _capture(model, 1)
    config = InvertingConfig(iterations=2, restarts=1, label_estimator="bias_corrected", log_every=0)
    fedavg, fedsgd = invert_many(model, [weights, gradient], config)
    assert fedavg.labels.tolist() == [3, 7] and fedavg.images.shape == (2, *SHAPE)
    assert fedsgd.images.shape == (3, *SHAPE) and fedavg.iterations_run == fedsgd.iterations_run == (2,)
