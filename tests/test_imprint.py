"""The malicious server's imprint attack (Robbing the Fed), the class-prior label counts and the success rates
with baselines: fast, on tiny models and synthetic or real images."""

from __future__ import annotations

import pytest
import torch
from flwr.app import ArrayRecord, ConfigRecord

from fl_privacy.attacks.imprint import imprint_attack
from fl_privacy.attacks.label_restoration import prior_counts
from fl_privacy.attacks.views import CapturedUpdate
from fl_privacy.config.schema import ModelSettings
from fl_privacy.data.images import ImageDataset
from fl_privacy.evaluation.reconstruction import score_reconstruction
from fl_privacy.evaluation.success_rates import baseline_images, median_ci, success_rates, wilson
from fl_privacy.models import IMPRINT_BIAS, Imprinted, build_model
from fl_privacy.training import batch_gradient
from strategies import CaptureSchedule, ImprintCapture
from strategies.malicious_imprint import brightness_thresholds, craft_imprint

SHAPE = (1, 8, 8)


def batch(brightness: list[float], seed: int = 0) -> ImageDataset:
    """Random images whose mean brightness is exactly `brightness` (one image per entry)."""
    generator = torch.Generator().manual_seed(seed)
    noise = torch.rand(len(brightness), *SHAPE, generator=generator) * 0.1 - 0.05
    noise -= noise.flatten(1).mean(1).view(-1, 1, 1, 1)
    images = torch.tensor(brightness).view(-1, 1, 1, 1) + noise
    return ImageDataset(images, torch.arange(len(brightness)) % 3)


def imprinted_model(bins: int = 16, crafted: bool = True) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model(ModelSettings(imprint_bins=bins, dropout=0.0), SHAPE, 3)
    if crafted:
        thresholds = torch.arange(bins, dtype=torch.float32) / bins
        model.load_state_dict(craft_imprint(model.state_dict(), thresholds))
    return model


def attack(model: torch.nn.Module, parts: list[ImageDataset]) -> torch.Tensor:
    """The imprint attack on the mean gradient of `parts` (one part: one client's update)."""
    gradients = [batch_gradient(model, part)[0] for part in parts]
    mean = {name: torch.stack([g[name] for g in gradients]).mean(0) for name in gradients[0]}
    count = sum(len(part) for part in parts)
    view = CapturedUpdate(model.state_dict(), SHAPE, batch_size=count, num_examples=count, gradient=mean)
    images = imprint_attack(model, view).images
    assert images is not None
    return images


def test_imprint_recovers_each_image_alone_in_its_bin_exactly():
    data = batch([0.11, 0.3, 0.47, 0.72])  # one image per bin of width 1/16
    ssim = score_reconstruction(attack(imprinted_model(), [data]), data.images).ssim
    assert (ssim > 0.999).all()


def test_imprint_recovers_the_clients_of_a_secure_aggregate():
    clients = [batch([0.11, 0.47]), batch([0.3, 0.72], seed=1)]
    truth = torch.cat([c.images for c in clients])
    ssim = score_reconstruction(attack(imprinted_model(), clients), truth).ssim
    assert (ssim > 0.999).all()


def test_the_imprint_attack_never_touches_the_ground_truth():
    from test_gradient_inversion import Tripwire

    data = batch([0.11, 0.3, 0.47, 0.72])
    model = imprinted_model()
    gradient, _ = batch_gradient(model, ImageDataset(data.images.as_subclass(Tripwire),
                                                     data.labels.as_subclass(Tripwire)))
    view = CapturedUpdate(model.state_dict(), SHAPE, batch_size=4, num_examples=4, gradient=gradient)
    Tripwire.armed = True
    try:
        images = imprint_attack(model, view).images
    finally:
        Tripwire.armed = False
    assert images is not None and type(images) is torch.Tensor


def test_images_sharing_a_bin_are_not_recovered():
    data = batch([0.3, 0.31, 0.72])  # the first two share a bin: the attack sees their mix
    images = attack(imprinted_model(), [data])
    aligned = images[score_reconstruction(images, data.images).order]
    error = (aligned - data.images).abs().flatten(1).amax(1)
    assert error[2] < 1e-4 and (error[:2] > 1e-3).all()


def test_the_crafted_block_is_what_makes_the_batch_leak():
    # Negative control: an honest (random) block leaks an image only where a unit happens to fire for it
    # alone (a first dense layer's known leak); the crafted one separates all eight.
    data = batch([0.07 + i / 8 for i in range(8)])
    recovered = {crafted: int((score_reconstruction(attack(imprinted_model(crafted=crafted), [data]),
                                                    data.images).ssim > 0.999).sum())
                 for crafted in (True, False)}
    assert recovered[True] == 8 and recovered[False] <= 2


def test_thresholds_split_public_brightness_into_equal_masses():
    public = batch([i / 100 for i in range(100)])
    thresholds = brightness_thresholds(4, public)
    assert thresholds[0] == 0 and torch.allclose(thresholds[1:], torch.tensor([0.2475, 0.495, 0.7425]),
                                                 atol=1e-3)


def test_the_malicious_server_crafts_only_captured_rounds(monkeypatch):
    model = imprinted_model(crafted=False)
    strategy = ImprintCapture(run_dir=".", schedule=CaptureSchedule((2,)), input_shape=SHAPE, num_classes=3,
                              model_fn=lambda: model, num_nodes=1, seed=0)
    strategy.partition_of = {7: 0}
    # Flower builds messages only inside a running ServerApp; what the server sends is what it keeps
    monkeypatch.setattr(strategy, "_construct_messages", lambda record, nodes, message_type: [])
    sent = {}
    for server_round in (1, 2):
        strategy.configure_round(server_round, ArrayRecord(model.state_dict()), ConfigRecord())
        assert strategy._sent is not None
        sent[server_round] = strategy._sent.to_torch_state_dict()[IMPRINT_BIAS]
    assert torch.equal(sent[1], model.state_dict()[IMPRINT_BIAS])
    assert torch.equal(sent[2], -brightness_thresholds(len(sent[2]), None))


def test_imprinted_model_keeps_the_inner_model_and_its_head_last():
    model = imprinted_model()
    assert isinstance(model, Imprinted)
    assert [name for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)][-1] == "inner.head"


def test_class_prior_counts_are_exact_when_each_class_outputs_its_prior():
    probs = torch.tensor([[0.7, 0.1, 0.2], [0.2, 0.8, 0.1], [0.1, 0.1, 0.7]], dtype=torch.float64)
    counts = torch.tensor([3, 0, 5])
    bias_grad = (probs - torch.eye(3, dtype=torch.float64)) @ counts.double() / 8
    assert torch.equal(prior_counts(probs, bias_grad, 8), counts)


def test_success_rates_count_only_reconstructions_beating_the_class_mean():
    truth = batch([0.2, 0.4, 0.6, 0.8])
    reference = batch([0.2, 0.4, 0.6, 0.8, 0.3, 0.5], seed=5)
    baselines = {name: {"psnr": [0.0] * 4, "ssim": [0.3, 0.3, 0.3, 0.9]} for name in ("class_mean", "blank")}
    rates = success_rates({"psnr": [30.0] * 4, "ssim": [1.0, 0.6, 0.4, 0.8]}, baselines)
    assert rates["recognisable"]["hits"] == 2 and rates["recognisable"]["n"] == 4
    images = baseline_images(truth, reference, seed=0)
    assert set(images) == {"blank", "class_mean", "same_class_image"}
    assert all(v.shape == truth.images.shape for v in images.values())


def test_intervals_cover_their_estimate():
    interval = wilson(3, 10)
    assert interval["ci95"][0] < 0.3 < interval["ci95"][1]
    median = median_ci([1.0, 2.0, 3.0, 4.0, 10.0])
    assert median["ci95"][0] <= median["median"] == 3.0 <= median["ci95"][1]


@pytest.mark.parametrize("hits", [0, 10])
def test_wilson_handles_all_or_nothing(hits):
    assert 0.0 <= wilson(hits, 10)["ci95"][0] <= wilson(hits, 10)["ci95"][1] <= 1.0


@pytest.mark.parametrize("perfect", [True, False])
def test_scores_json_carries_rates_and_baselines(tmp_path, settings_factory, perfect):
    from fl_privacy.data.datasets import load_splits
    from fl_privacy.lab.pipelines.inversion_pipeline import score_reconstructions
    from fl_privacy.results import save_torch, write_json
    from fl_privacy.run_layout import RECONSTRUCTIONS, TRUTH, round_file

    settings = settings_factory("+experiment=dlg")
    indices = [0, 1, 2, 3]
    truth = load_splits(settings.data, settings.seed).train.subset(indices)
    write_json(round_file(tmp_path, TRUTH, 1, 0, ".json"), {"indices": indices})
    images = truth.images if perfect else torch.zeros_like(truth.images)
    save_torch(round_file(tmp_path, RECONSTRUCTIONS, 1, 0, ".pt"),
               {"images": images, "labels": truth.labels.sort().values, "loss": 0.0, "seconds": 0.0,
                "attack": "dlg", "metadata": {"round": 1, "partition": 0}})
    rates = score_reconstructions(tmp_path, settings)["rates"]
    assert rates["recognisable"]["hits"] == (4 if perfect else 0) and rates["recognisable"]["n"] == 4
    assert set(rates["baselines"]) == {"blank", "class_mean", "same_class_image"}
    blank_psnr = rates["baselines"]["blank"]["psnr"]["median"]
    assert (rates["reconstruction"]["psnr"]["median"] > blank_psnr) == perfect
