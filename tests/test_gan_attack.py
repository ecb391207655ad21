"""The GAN attack: generator training, node state, the oracle's independence, the insider's view, a tiny
real run."""

import json
from dataclasses import fields, is_dataclass

import numpy as np
import pytest
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MessageType, RecordDict
from flwr.supercore.task_identity import TaskIdentity
from torch import nn

from fl_privacy.apps import client_app, node_state
from fl_privacy.apps import gan_adversary as gan_adversary_role
from fl_privacy.apps.roles import role_of
from fl_privacy.attacks.gan import GeneratorTraining, attack_is_on, train_generator, update_fake_pool
from fl_privacy.attacks.views import InsiderView
from fl_privacy.config.schema import OracleSettings
from fl_privacy.data.federation import Federation, build_federation
from fl_privacy.data.images import DataSplits, ImageDataset
from fl_privacy.evaluation.oracle import frechet_distance, load_or_train_oracle, oracle_training_data
from fl_privacy.lab.channels.side_channels import RunHooks
from fl_privacy.models import DCGANGenerator, build_model, model_outputs
from fl_privacy.protocol import ANNOUNCED_ACCURACY, ARRAYS, CONFIG, METRICS, SERVER_ROUND
from fl_privacy.results import read_metrics


def _context() -> Context:
    return Context(run_id=1, node_id=7, node_config={"partition-id": 0}, state=RecordDict(),
                   run_config={})


def test_generator_makes_images_in_range_of_the_data_shape():
    for shape in [(1, 28, 28), (1, 25, 25), (3, 32, 32)]:
        images = DCGANGenerator(16, shape).sample(5, seed=0)
        assert images.shape == (5, *shape)
        assert images.min() >= 0 and images.max() <= 1


def test_generator_learns_the_target_class_and_leaves_the_discriminator_unchanged(settings_factory,
                                                                                  one_torch_thread):
    torch.manual_seed(0)
    discriminator = build_model(settings_factory().model, (1, 28, 28), 11)
    before = {k: v.clone() for k, v in discriminator.state_dict().items()}
    generator = DCGANGenerator(16, (1, 28, 28))
    optimizer = torch.optim.Adam(generator.parameters(), lr=5e-3, betas=(0.5, 0.999))

    def target_probability() -> float:
        with torch.no_grad():
            return torch.softmax(discriminator.eval()(generator.sample(64, seed=1)), 1)[:, 4].mean().item()

    start = target_probability()
    settings = GeneratorTraining(steps=80, batch_size=16, lr=5e-3, tv_weight=0.0)
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


def test_attack_schedule(settings_factory):
    settings = settings_factory("client=gan_adversary").attack.gan
    assert settings.start_accuracy == 0.85
    assert not attack_is_on(settings, 3, 0.80, already_started=False)
    assert attack_is_on(settings, 3, 0.86, already_started=False)
    assert not attack_is_on(settings, 3, None, already_started=False)
    assert attack_is_on(settings, 4, 0.10, already_started=True)
    fixed = settings_factory(
        "client=gan_adversary", "attack.gan.start_round=5", "attack.gan.start_accuracy=null").attack.gan
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


def test_oracle_never_trains_on_federated_training_data(settings_factory, tmp_path):
    federation = build_federation(settings_factory("+experiment=gan_attack").federation)
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


def _reachable_tensors(item, seen: set[int] | None = None) -> list[torch.Tensor]:
    """Every tensor reachable from `item` through dataclass fields, containers, module parameters,
    buffers and plain attributes."""
    seen = set() if seen is None else seen
    if id(item) in seen:
        return []
    seen.add(id(item))
    if isinstance(item, torch.Tensor):
        return [item]
    if isinstance(item, nn.Module):
        children = [*item.parameters(), *item.buffers(),
                    *(v for k, v in vars(item).items() if not k.startswith("_"))]
    elif is_dataclass(item):
        children = [getattr(item, f.name) for f in fields(item)]
    elif isinstance(item, dict):
        children = list(item.values())
    elif isinstance(item, list | tuple | set):
        children = list(item)
    else:
        return []
    return [t for child in children for t in _reachable_tensors(child, seen)]


def test_gan_attack_round_sees_only_the_adversarys_own_partition(settings_factory, monkeypatch, tmp_path):
    """At run time the adversary's role hands `attacks.gan.attack_round` an `InsiderView` holding its own
    partition, the received model and the announcements, and nothing else: no federation, no test split,
    no other client's records."""
    settings = settings_factory("+experiment=gan_attack", "attack.gan.start_round=1",
                                "attack.gan.start_accuracy=null", "attack.gan.generator_steps=2",
                                "attack.gan.generator_batch_size=8", "attack.gan.num_fakes=8")
    federation = build_federation(settings.federation)
    adversary = 0
    assert role_of(settings, adversary) == "gan_adversary"
    own = federation.client_data(adversary)
    views, reachable = [], []
    real_round = gan_adversary_role.attack_round

    def spy(view, *args, **kwargs):
        views.append(view)
        reachable.extend(t.detach().clone() for t in _reachable_tensors(view))
        return real_round(view, *args, **kwargs)

    monkeypatch.setattr(gan_adversary_role, "attack_round", spy)
    jobs = []

    def spy_role(job, model):
        jobs.append(job)
        return gan_adversary_role.gan_adversary(job, model)

    monkeypatch.setitem(client_app.ROLES, "gan_adversary", spy_role)
    splits = federation.splits
    model = build_model(settings.model, splits.image_shape,
                        model_outputs(settings.client, splits.num_classes))
    for identity in ("_task_id", "_run_id", "_node_id"):  # what Flower's server process would have set
        monkeypatch.setattr(TaskIdentity, identity, 1)
    message = Message(RecordDict({ARRAYS: ArrayRecord(model.state_dict()),
                                  CONFIG: ConfigRecord({SERVER_ROUND: 1, ANNOUNCED_ACCURACY: 0.5})}),
                      dst_node_id=7, message_type=MessageType.TRAIN)
    reply = client_app.handle_train(settings, RunHooks(tmp_path), message, _context())
    metrics = reply.content.metric_records[METRICS]
    # the role's whole job (not only the view it builds) reaches no record outside its own partition
    job_images = [t for t in _reachable_tensors(jobs[0])
                  if t.dim() == 4 and tuple(t.shape[1:]) == splits.image_shape]
    assert job_images and _row_keys(torch.cat(job_images)) == _row_keys(own.images)
    assert len(views) == 1 and metrics
    view = views[0]
    assert isinstance(view, InsiderView)
    assert {f.name for f in fields(view)} == {"own_data", "model", "server_round", "announced_accuracy",
                                              "fake_class"}
    assert view.server_round == 1 and view.announced_accuracy == 0.5
    assert view.fake_class == splits.num_classes
    assert not any(isinstance(getattr(view, f.name), Federation | DataSplits) for f in fields(view))
    assert [f.name for f in fields(view) if isinstance(getattr(view, f.name), ImageDataset)] == ["own_data"]
    assert torch.equal(view.own_data.images, own.images) and torch.equal(view.own_data.labels, own.labels)
    # the images it can reach at all (anything image-shaped behind the view) are exactly its partition
    images = [t for t in reachable if t.dim() == 4 and tuple(t.shape[1:]) == splits.image_shape]
    assert images and _row_keys(torch.cat(images)) == _row_keys(own.images)
    assert settings.attack.gan.victim_class not in view.own_data.labels.tolist()
    # its generator went to the lab's monitor through the hook, not to the server
    assert torch.load(tmp_path / "lab" / "gan_generator.pt", weights_only=True)["round"] == 1


@pytest.fixture(scope="module")
def attack_run(farm_runs):
    return farm_runs.run_dir("gan_tiny")


@pytest.mark.simulation
@pytest.mark.farm("gan_tiny")
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
    final_model = torch.load(attack_run / "final_model.pt", weights_only=True)
    assert final_model["head.weight"].shape[0] == 11  # + "fake"


@pytest.mark.simulation
@pytest.mark.farm("gan_tiny")
def test_generator_state_persists_across_rounds_in_the_simulation(attack_run):
    """The adversary's counters and generator live in context.state inside the Ray actors: after
    the second attack round they count two rounds of generator training (the adversary publishes its
    generator to the lab through the lab's hook, `lab/gan_generator.pt`)."""
    saved = torch.load(attack_run / "lab" / "gan_generator.pt", weights_only=True)
    assert saved["round"] == 3
    assert saved["progress"] == {"started_round": 2, "attack_rounds": 2, "generator_steps": 6}
