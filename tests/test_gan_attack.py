"""The GAN attack: generator training, node state, the oracle's independence, a tiny real run."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from flwr.app import Context, RecordDict
from torch import nn

from fl_privacy.attacks.gan import DCGANGenerator, GeneratorTraining, train_generator, update_fake_pool
from fl_privacy.clients import node_state
from fl_privacy.clients.gan_adversary import GanAttackSettings, attack_is_on
from fl_privacy.data.federation import build_federation
from fl_privacy.evaluation.oracle import (
    OracleSettings,
    frechet_distance,
    load_or_train_oracle,
    oracle_training_data,
)
from fl_privacy.models import build_model
from fl_privacy.results import read_metrics

ROOT = Path(__file__).resolve().parents[1]


def _context() -> Context:
    return Context(run_id=1, node_id=7, node_config={"partition-id": 0}, state=RecordDict(),
                   run_config={})


def test_generator_makes_images_in_range_of_the_data_shape():
    for shape in [(1, 28, 28), (1, 25, 25), (3, 32, 32)]:
        images = DCGANGenerator(16, shape).sample(5, seed=0)
        assert images.shape == (5, *shape)
        assert images.min() >= 0 and images.max() <= 1


def test_generator_learns_the_target_class_and_leaves_the_discriminator_unchanged(cfg_factory):
    torch.manual_seed(0)
    discriminator = build_model(cfg_factory().model, (1, 28, 28), 11)
    before = {k: v.clone() for k, v in discriminator.state_dict().items()}
    generator = DCGANGenerator(16, (1, 28, 28))
    optimizer = torch.optim.Adam(generator.parameters(), lr=1e-3, betas=(0.5, 0.999))

    def target_probability() -> float:
        with torch.no_grad():
            return torch.softmax(discriminator.eval()(generator.sample(64, seed=1)), 1)[:, 4].mean().item()

    start = target_probability()
    settings = GeneratorTraining(steps=120, lr=2e-3, tv_weight=0.0)
    train_generator(generator, optimizer, discriminator, 4, settings, seed=0)
    assert target_probability() > max(2 * start, start + 0.15)
    for name, value in discriminator.state_dict().items():
        assert torch.equal(value, before[name]), name
    assert all(p.requires_grad for p in discriminator.parameters())


def test_fake_pool_replaces_or_accumulates_up_to_its_cap():
    first, second = torch.zeros(3, 1, 2, 2), torch.ones(3, 1, 2, 2)
    assert torch.equal(update_fake_pool(first, second, "replace", 10), second)
    pooled = update_fake_pool(first, second, "accumulate", 4)
    assert len(pooled) == 4 and torch.equal(pooled[-3:], second)


def test_attack_schedule(cfg_factory):
    settings = GanAttackSettings.from_cfg(cfg_factory("client=gan_adversary").client.gan)
    assert settings.start_accuracy == 0.85
    assert not attack_is_on(settings, 3, 0.80, already_started=False)
    assert attack_is_on(settings, 3, 0.86, already_started=False)
    assert not attack_is_on(settings, 3, None, already_started=False)
    assert attack_is_on(settings, 4, 0.10, already_started=True)
    fixed = GanAttackSettings.from_cfg(cfg_factory(
        "client=gan_adversary", "client.gan.start_round=5", "client.gan.start_accuracy=null").client.gan)
    assert not attack_is_on(fixed, 4, 0.99, already_started=False)
    assert attack_is_on(fixed, 5, None, already_started=False)


def test_node_state_round_trips_module_optimizer_tensor_and_counters():
    context = _context()
    generator = DCGANGenerator(8, (1, 28, 28))
    optimizer = torch.optim.Adam(generator.parameters(), lr=1e-3)
    train_generator(generator, optimizer, nn.Sequential(nn.Flatten(), nn.Linear(784, 3)), 1,
                    GeneratorTraining(steps=2, batch_size=4), seed=0)
    node_state.save_module(context, "g", generator)
    node_state.save_optimizer(context, "o", optimizer)
    node_state.save_tensor(context, "pool", torch.arange(6.0))
    node_state.save_counters(context, "progress", {"attack_rounds": 2})

    restored = DCGANGenerator(8, (1, 28, 28))
    restored_optimizer = torch.optim.Adam(restored.parameters(), lr=1e-3)
    assert node_state.load_module(context, "g", restored)
    assert node_state.load_optimizer(context, "o", restored_optimizer)
    for name, value in generator.state_dict().items():
        assert torch.equal(restored.state_dict()[name], value)
    saved, loaded = optimizer.state_dict()["state"], restored_optimizer.state_dict()["state"]
    assert saved.keys() == loaded.keys()
    for index in saved:
        for slot in saved[index]:
            assert torch.equal(torch.as_tensor(saved[index][slot]), torch.as_tensor(loaded[index][slot]))
    assert torch.equal(node_state.load_tensor(context, "pool"), torch.arange(6.0))
    assert node_state.load_counters(context, "progress") == {"attack_rounds": 2}
    assert not node_state.load_module(_context(), "g", restored)


def test_frechet_distance_of_gaussians():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4000, 3))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    shifted = a + np.array([3.0, 0.0, 4.0])
    assert frechet_distance(a, shifted) == pytest.approx(25.0, rel=1e-6)
    scaled = a * 2.0  # covariances I and 4I: tr(I) + tr(4I) - 2 tr(2I) = 3
    assert frechet_distance(a, scaled) == pytest.approx(3.0, rel=0.05)


def _row_keys(images: torch.Tensor) -> set[bytes]:
    return {row.numpy().tobytes() for row in images}


def test_oracle_never_trains_on_federated_training_data(cfg_factory, tmp_path):
    cfg = cfg_factory("+experiment=gan_attack")
    federation = build_federation(cfg)
    oracle_rows = _row_keys(oracle_training_data(federation.splits).images)
    federated = [federation.warmup] + [federation.client_data(p) for p in range(10)]
    for data in federated:
        assert not oracle_rows & _row_keys(data.images)
    settings = OracleSettings(epochs=1, batch_size=64, lr=1e-3, components=8, cache_dir=str(tmp_path))
    oracle = load_or_train_oracle(federation.splits, settings, seed=0)
    assert _row_keys(oracle.training_data.images) == oracle_rows
    assert oracle.cache_path.exists() and oracle.cache_path.parent == tmp_path
    again = load_or_train_oracle(federation.splits, settings, seed=0)
    for name, value in oracle.model.state_dict().items():
        assert torch.equal(again.model.state_dict()[name], value)


TINY_ATTACK = ["+experiment=gan_attack", "simulation.num_clients=3", "strategy.num_rounds=3",
               "client.gan.victim_class=1", "client.gan.start_round=2", "client.gan.start_accuracy=null",
               "client.gan.generator_steps=3", "client.gan.num_fakes=32", "strategy.warmup.epochs=1",
               "oracle.epochs=1", "oracle.components=8", "oracle.samples_per_round=64"]


@pytest.fixture(scope="module")
def attack_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("gan")
    result = subprocess.run(
        [sys.executable, "-m", "fl_privacy.run", *TINY_ATTACK, f"oracle.cache_dir={base / 'cache'}",
         f"hydra.run.dir={base / 'run'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return base / "run"


@pytest.mark.simulation
def test_tiny_attack_run_writes_metrics_and_images(attack_run):
    records = read_metrics(attack_run / "metrics.jsonl")
    assert [r["round"] for r in records] == [0, 1, 2, 3]
    assert all("gan_attack" not in r for r in records[:2])  # the attack starts in round 2
    for record in records[2:]:
        attack = record["gan_attack"]
        assert 0 <= attack["victim_share"] <= 1 and 0 <= attack["victim_confidence"] <= 1
        assert attack["frechet_distance"] > 0 and attack["diversity_ratio"] > 0
        assert (attack_run / "gan" / f"samples_round_{record['round']:03d}.png").stat().st_size > 500
    assert (attack_run / "gan" / "progression.png").stat().st_size > 1000
    summary = json.loads((attack_run / "summary.json").read_text())
    gan = summary["attacks"]["gan_attack"]
    assert gan["attack_rounds"] == 2 and gan["first_attack_round"] == 2
    assert gan["baseline"]["frechet_other_vs_victim"] > 0
    assert torch.load(attack_run / "final_model.pt")["head.weight"].shape[0] == 11  # + "fake"


@pytest.mark.simulation
def test_generator_state_persists_across_rounds_in_the_simulation(attack_run):
    """The adversary's counters and generator live in context.state inside the Ray actors: after
    the second attack round they count two rounds of generator training."""
    saved = torch.load(attack_run / "gan" / "generator.pt", weights_only=True)
    assert saved["round"] == 3
    assert saved["progress"] == {"started_round": 2, "attack_rounds": 2, "generator_steps": 6}
