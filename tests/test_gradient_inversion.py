"""Gradient inversion and label restoration on real MNIST digits, the ground-truth boundary, and metrics."""

from __future__ import annotations

import ast
import inspect
import pkgutil
import re
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.nn import functional as F

from fl_privacy import attacks
from fl_privacy.attacks import (
    CapturedUpdate,
    DLGConfig,
    InvertingConfig,
    dlg,
    gradient_inversion,
    image_optimisation,
    invert_fedavg,
    inverting_gradients,
    label_restoration,
    label_set,
    registry,
    restore_labels,
    views,
)
from fl_privacy.cli import commands
from fl_privacy.data.images import ImageDataset
from fl_privacy.evaluation import (
    label_accuracy,
    label_count_accuracy,
    match_reconstructions,
    mse,
    psnr,
    save_comparison_grid,
    score_reconstruction,
    ssim,
)
from fl_privacy.lab.pipelines import inversion_pipeline
from fl_privacy.models import SeedCNN, SigmoidLeNet
from fl_privacy.training import TrainSettings, train

SHAPE = (1, 28, 28)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def dlg_lenet(seed: int) -> SigmoidLeNet:
    """DLG's LeNet with the paper's init: every parameter uniform in [-0.5, 0.5]."""
    torch.manual_seed(seed)
    model = SigmoidLeNet(SHAPE, 10)
    for parameter in model.parameters():
        parameter.data.uniform_(-0.5, 0.5)
    return model


def seed_cnn(seed: int) -> SeedCNN:
    torch.manual_seed(seed)
    return SeedCNN(SHAPE, 10).eval()  # eval: the shared gradient carries no dropout noise


def share_gradient(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> CapturedUpdate:
    """The honest client's side of FedSGD: one mean cross-entropy gradient, as the server receives it."""
    names = [name for name, _ in model.named_parameters()]
    grads = torch.autograd.grad(F.cross_entropy(model(images), labels), list(model.parameters()))
    return CapturedUpdate(model.state_dict(), SHAPE, batch_size=len(labels), num_examples=len(labels),
                          gradient=dict(zip(names, grads, strict=True)))


def duplicate_batch(data: ImageDataset, size: int, rng: np.random.Generator) -> ImageDataset:
    """`size` real digits drawn from 2-4 classes, so labels repeat."""
    classes = rng.choice(10, rng.integers(2, 5), replace=False)
    labels = rng.choice(classes, size)
    pool = data.labels.numpy()
    return data.subset([rng.choice(np.flatnonzero(pool == c)) for c in labels])


# --- attacks on real digits -------------------------------------------------------------------------------


def test_dlg_reconstructs_a_single_mnist_digit(mnist):
    model, digit = dlg_lenet(1), mnist.subset([1])
    captured = share_gradient(model, digit.images, digit.labels)
    result = dlg(model, captured, DLGConfig(iterations=40, log_every=0))
    assert result.labels.tolist() == digit.labels.tolist()
    assert float(psnr(result.images, digit.images)) > 50
    assert result.images.min() >= 0 and result.images.max() <= 1


def test_dlg_with_optimised_soft_labels_recovers_label_and_digit(mnist):
    model, digit = dlg_lenet(4), mnist.subset([4])
    result = dlg(model, share_gradient(model, digit.images, digit.labels),
                 DLGConfig(iterations=25, label_mode="optimise", log_every=0))
    assert result.labels.tolist() == digit.labels.tolist()
    assert float(psnr(result.images, digit.images)) > 30


def test_inverting_gradients_keeps_the_best_restart(mnist):
    model, digit = dlg_lenet(1), mnist.subset([1])
    result = inverting_gradients(model, share_gradient(model, digit.images, digit.labels),
                                 InvertingConfig(iterations=150, restarts=2, log_every=0))
    assert len(result.restart_losses) == 2 and result.loss == min(result.restart_losses)
    assert float(psnr(result.images, digit.images)) > 15


def test_invert_fedavg_matches_the_update_of_real_local_sgd(mnist):
    model, batch = dlg_lenet(0), mnist.subset([0, 300])
    client = dlg_lenet(0)
    train(client, batch, TrainSettings(epochs=3, batch_size=2, lr=0.01, optimizer="sgd"), seed=0)
    captured = CapturedUpdate(model.state_dict(), SHAPE, batch_size=2, num_examples=2,
                              updated_state=client.state_dict(), lr=0.01, local_steps=3)
    result = invert_fedavg(model, captured, InvertingConfig(iterations=150, restarts=1, log_every=0))
    assert sorted(result.labels.tolist()) == sorted(batch.labels.tolist())
    assert result.loss < 0.05  # simulating the client's three SGD steps lines the deltas up
    assert score_reconstruction(result.images, batch.images).psnr.median() > 8


def test_invert_fedavg_with_lbfgs_reconstructs_four_digits_after_three_local_steps(mnist):
    """The inverting_fedavg setting: seed CNN at init, 4 digits, 3 full-batch plain-SGD steps."""
    batch = mnist.subset([0, 100, 200, 300])
    model = SeedCNN(SHAPE, 10, dropout=0.0)
    client = SeedCNN(SHAPE, 10, dropout=0.0)
    client.load_state_dict(model.state_dict())
    train(client, batch, TrainSettings(epochs=3, batch_size=4, lr=0.01, optimizer="sgd"), seed=0)
    captured = CapturedUpdate(model.state_dict(), SHAPE, batch_size=4, num_examples=4,
                              updated_state=client.state_dict(), lr=0.01, local_steps=3)
    result = invert_fedavg(model, captured, DLGConfig(iterations=8, log_every=0))
    assert sorted(result.labels.tolist()) == sorted(batch.labels.tolist())
    assert score_reconstruction(result.images, batch.images).psnr.median() > 20


# --- label restoration ------------------------------------------------------------------------------------


@pytest.mark.parametrize("make_model", [dlg_lenet, seed_cnn])
def test_idlg_label_is_right_for_every_digit(mnist, make_model):
    hits = 0
    for index in range(0, 500, 20):
        model, digit = make_model(index), mnist.subset([index])
        hits += restore_labels(model, share_gradient(model, digit.images, digit.labels)).tolist() == [
            int(digit.labels)]
    assert hits >= 24


@pytest.mark.parametrize("make_model", [dlg_lenet, seed_cnn])
def test_label_counts_are_exact_at_batch_8_with_duplicates(mnist, make_model):
    rng, exact = np.random.default_rng(0), 0
    for trial in range(20):
        model, batch = make_model(trial), duplicate_batch(mnist, 8, rng)
        restored = restore_labels(model, share_gradient(model, batch.images, batch.labels))
        exact += label_count_accuracy(restored, batch.labels, 10) == 1.0
    assert exact >= 19


def test_label_set_is_the_classes_present(mnist):
    batch = duplicate_batch(mnist, 8, np.random.default_rng(1))
    model = dlg_lenet(0)
    grads = share_gradient(model, batch.images, batch.labels).gradient
    present = label_set(grads["head.weight"], grads["head.bias"])
    assert set(present.tolist()) <= set(batch.labels.tolist()) and len(present) > 0


# --- the ground-truth boundary ----------------------------------------------------------------------------

FORBIDDEN = re.compile(
    r"^(x|y|images?|labels?|targets?|truth|ground_truth|true_.*|.*_true|secret|data(set)?)$")
ATTACK_MODULES = (gradient_inversion, label_restoration, image_optimisation, registry)
# the attacker's side of a run: the server's view, the attack command's settings, the reconstruction step and
# the capture files it reads
ATTACK_ENTRY_POINTS = (views.CapturedUpdate, commands.run_settings, inversion_pipeline.reconstruct_captures,
                       inversion_pipeline.load_capture)
OUTPUTS = ("Reconstruction",)  # results carry reconstructed images and labels; they are not inputs


def _public_callables():
    for module in ATTACK_MODULES:
        for name, item in vars(module).items():
            if (not name.startswith("_") and name not in OUTPUTS and callable(item)
                    and getattr(item, "__module__", "") == module.__name__):
                yield f"{module.__name__}.{name}", item


def test_no_attack_entry_point_accepts_ground_truth():
    checked = 0
    entry_points = [(f"{f.__module__}.{f.__qualname__}", f) for f in ATTACK_ENTRY_POINTS]
    for name, item in [*_public_callables(), *entry_points]:
        for parameter in inspect.signature(item).parameters:
            assert not FORBIDDEN.match(parameter), f"{name} takes `{parameter}`: attacks never see the data"
        checked += 1
    assert checked >= 14


# what an attack may build on: torch and friends, the models, the record type, the typed settings of its own
# node, the training loop (an insider's honest-looking update), named seed streams and progress lines
ATTACK_IMPORTS = ("torch", "torchvision", "numpy", "tqdm", "__future__", "copy", "logging", "math",
                  "importlib", "pkgutil",
                  "collections", "dataclasses", "typing", "sklearn", "scipy", "fl_privacy.models",
                  "fl_privacy.attacks", "fl_privacy.data.images", "fl_privacy.config.schema",
                  "fl_privacy.training", "fl_privacy.seeding", "fl_privacy.progress")
# the lab, the truth's loaders and samplers, and the evaluation: never reachable from an attack
LAB_SIDE = ("fl_privacy.lab", "fl_privacy.data.federation", "fl_privacy.data.datasets",
            "fl_privacy.data.partition", "fl_privacy.data.membership_split", "fl_privacy.evaluation")


def _is_under(name: str, prefixes: tuple[str, ...]) -> bool:
    return name in prefixes or name.startswith(tuple(f"{p}." for p in prefixes))


def test_attacks_import_only_torch_numpy_and_models():
    paths = sorted(Path(attacks.__file__).parent.glob("*.py"))
    assert {"views.py", "gan.py", "membership_inference.py", "logan.py"} <= {p.name for p in paths}
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                # `from P import N` imports P, and N may be a module of P (`from fl_privacy import lab`)
                names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            assert _is_under(names[0], ATTACK_IMPORTS), (
                f"{path.name} imports {names[0]}: attacks -> models, torch only")
            for name in names:
                assert not _is_under(name, LAB_SIDE), f"{path.name} imports {name}: the lab's side"


def test_no_attack_module_reaches_the_lab_at_run_time():
    """Importing every attack module (and what they import, transitively) loads none of the lab, the data
    loaders and samplers, or the evaluation."""
    modules = [f"fl_privacy.attacks.{info.name}" for info in pkgutil.iter_modules(attacks.__path__)]
    assert len(modules) >= 9
    code = ("import importlib, sys\n"
            f"for name in {modules!r}: importlib.import_module(name)\n"
            "print('\\n'.join(sorted(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = result.stdout.split()
    assert set(modules) <= set(loaded)
    assert not [name for name in loaded if _is_under(name, LAB_SIDE)]


class Tripwire(torch.Tensor):
    """Ground truth that raises on any use once armed: an attack reading it (a global, a graph) fails."""

    armed = False

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if cls.armed:
            raise AssertionError(f"an attack touched the ground truth ({func})")
        return super().__torch_function__(func, types, args, kwargs or {})


def test_attacks_never_touch_the_ground_truth(mnist):
    batch = mnist.subset([5, 6])
    images, labels = batch.images.as_subclass(Tripwire), batch.labels.as_subclass(Tripwire)
    model = dlg_lenet(2)
    captured = share_gradient(model, images, labels)
    assert all(type(t) is torch.Tensor and t.grad_fn is None for t in captured.gradient.values())
    Tripwire.armed = True
    try:
        with pytest.raises(AssertionError, match="touched the ground truth"):
            images.sum()  # the tripwire works
        dlg(model, captured, DLGConfig(iterations=1, inner_iterations=2, log_every=0))
        inverting_gradients(model, captured, InvertingConfig(iterations=2, restarts=1, log_every=0))
        restore_labels(model, captured)
        registry.run_attack("labels", model, captured, DLGConfig())
    finally:
        Tripwire.armed = False


def test_fedavg_inversion_never_touches_the_ground_truth(mnist):
    batch = mnist.subset([7, 8])
    images, labels = batch.images.as_subclass(Tripwire), batch.labels.as_subclass(Tripwire)
    model, client = dlg_lenet(3), dlg_lenet(3)
    train(client, ImageDataset(images, labels), TrainSettings(epochs=2, batch_size=2, lr=0.01,
                                                              optimizer="sgd"), seed=0)
    captured = CapturedUpdate(model.state_dict(), SHAPE, batch_size=2, num_examples=2,
                              updated_state=client.state_dict(), lr=0.01, local_steps=2)
    Tripwire.armed = True
    try:
        invert_fedavg(model, captured, DLGConfig(iterations=1, inner_iterations=2, log_every=0))
        invert_fedavg(model, captured, InvertingConfig(iterations=2, restarts=1, log_every=0))
    finally:
        Tripwire.armed = False


def _globals_used(function: types.FunctionType) -> set[str]:
    names, codes = set(), [function.__code__]
    while codes:
        code = codes.pop()
        names |= set(code.co_names)
        codes += [c for c in code.co_consts if isinstance(c, types.CodeType)]
    return names


def test_attack_step_imports_neither_data_nor_evaluation():
    """The reconstruction step (`inversion_pipeline.reconstruct_captures` and the capture reader it calls),
    which lives beside the lab's scoring step, never uses the truth's loaders, the truth side channel or
    the evaluation."""
    module = inversion_pipeline
    pending, checked, used = [module.reconstruct_captures], set(), []
    while pending:
        function = pending.pop()
        checked.add(function.__name__)
        for name in _globals_used(function):
            item = getattr(module, name, None)
            if item is None:
                continue
            origin = item.__name__ if isinstance(item, types.ModuleType) else getattr(item, "__module__", "")
            if origin == module.__name__ and isinstance(item, types.FunctionType):
                if item.__name__ not in checked:
                    pending.append(item)
            elif origin:
                used.append((name, origin))
    assert "load_capture" in checked and ("run_attack", "fl_privacy.attacks.registry") in used
    bad = [(name, origin) for name, origin in used
           if origin.startswith(("fl_privacy.data", "fl_privacy.evaluation",
                                 "fl_privacy.lab.channels.side_channels"))]
    assert not bad, f"the reconstruction step uses {bad}"
    # ... while the scoring step is the lab's: it reads the truth
    assert "load_splits" in _globals_used(module.score_reconstructions)
    assert "truth_indices" in _globals_used(module._score_into)


# --- evaluation -------------------------------------------------------------------------------------------


def test_identical_images_score_perfectly(mnist):
    images = mnist.images[:3]
    assert mse(images, images).eq(0).all() and mse(images, images, scale=255.0).eq(0).all()
    assert psnr(images, images).eq(100.0).all()
    assert torch.allclose(ssim(images, images), torch.ones(3, dtype=torch.float64))
    assert label_accuracy(mnist.labels[:3], mnist.labels[:3]) == 1.0


def test_scores_drop_for_noise_and_mse_scales_to_8_bit(mnist):
    images = mnist.images[:2]
    noisy = (images + 0.1 * torch.randn_like(images)).clamp(0, 1)
    assert torch.allclose(mse(noisy, images, scale=255.0), mse(noisy, images) * 255**2)
    assert (psnr(noisy, images) < 30).all() and (ssim(noisy, images) < 0.9).all()


def test_assignment_recovers_a_permutation(mnist):
    truth = mnist.images[:6]
    permutation = torch.tensor([3, 0, 5, 1, 4, 2])
    order = match_reconstructions(truth[permutation], truth)
    assert torch.equal(truth[permutation][order], truth)
    assert score_reconstruction(truth[permutation], truth).psnr.eq(100.0).all()


def test_label_count_accuracy_ignores_order_and_counts_multiplicity():
    truth = torch.tensor([1, 1, 2, 7])
    assert label_count_accuracy(torch.tensor([7, 2, 1, 1]), truth, 10) == 1.0
    assert label_count_accuracy(torch.tensor([1, 2, 2, 7]), truth, 10) == 0.75


def test_comparison_grid_is_a_png_of_pairs(mnist, tmp_path):
    truth = mnist.images[:3]
    path = save_comparison_grid(truth, truth.flip(-1), tmp_path / "grids" / "pairs.png")
    with Image.open(path) as picture:
        assert picture.size == (2 + 6 * 30, 2 + 30)
    assert list(path.parent.iterdir()) == [path]
