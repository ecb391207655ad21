"""PAR-GAN, GAN membership inference and inversion from representations: unit tests and one tiny run."""

import inspect
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from sklearn.metrics import roc_auc_score
from torch import nn
from torch.nn import functional as F

from fl_privacy.attacks import logan, representation_inversion
from fl_privacy.attacks.logan import nearest_sample_scores, white_box_scores
from fl_privacy.attacks.representation_inversion import invert_representation, layer_extractor
from fl_privacy.config import load_settings
from fl_privacy.config.schema import RepresentationInversionSettings
from fl_privacy.data.images import ImageDataset
from fl_privacy.data.membership_split import random_split
from fl_privacy.defenses import par_gan
from fl_privacy.defenses.par_gan import (
    LATENT_NOISE,
    PARTITION_BATCHES,
    ParGanSettings,
    generator_loss,
    split_partitions,
    train_par_gan,
)
from fl_privacy.errors import ConfigError
from fl_privacy.evaluation.membership_metrics import logan_metrics, top_k_accuracy
from fl_privacy.evaluation.reconstruction import mse
from fl_privacy.lab.experiment import run_experiment
from fl_privacy.lab.pipelines.representation_pipeline import run_representation_inversion
from fl_privacy.lab.preflight import check_settings
from fl_privacy.models import SeedCNN
from fl_privacy.seeding import Stream, derive_seed

ROOT = Path(__file__).resolve().parents[1]
SHAPE = (1, 8, 8)


def _constant_records(count: int) -> torch.Tensor:
    """Record j is an image filled with (j + 1) / (count + 1): its value names it."""
    return ((torch.arange(count, dtype=torch.float32) + 1) / (count + 1)).view(-1, 1, 1, 1).expand(-1, *SHAPE)


def test_partitions_are_disjoint_and_cover_the_records():
    parts = split_partitions(103, 5, seed=0)
    assert len(parts) == 5 and {len(p) for p in parts} == {20, 21}
    joined = np.concatenate(parts)
    assert len(np.unique(joined)) == 103 and set(joined) == set(range(103))
    assert not np.array_equal(np.concatenate(split_partitions(103, 5, seed=1)), joined)
    assert np.array_equal(split_partitions(10, 1, seed=0)[0], np.arange(10))


def _record_discriminator_inputs(monkeypatch) -> list[list[torch.Tensor]]:
    """Every input batch of every discriminator built from now on, one list per discriminator."""
    seen: list[list[torch.Tensor]] = []
    build = par_gan.build_discriminator

    def recording(shape, dropout):
        discriminator, inputs = build(shape, dropout), []
        discriminator.register_forward_pre_hook(lambda module, args: inputs.append(args[0].detach().clone()))
        seen.append(inputs)
        return discriminator

    monkeypatch.setattr(par_gan, "build_discriminator", recording)
    return seen


def test_each_discriminator_only_ever_sees_its_own_partition(monkeypatch):
    records, seen = _constant_records(30), _record_discriminator_inputs(monkeypatch)
    gan = train_par_gan(records, ParGanSettings(3, steps=6, batch_size=6, latent_dim=4, log_every=0), seed=0)
    assert len(seen) == 3
    for inputs, partition in zip(seen, gan.partitions, strict=True):
        rows = torch.cat(inputs).flatten(1)
        constant = rows.std(1) == 0  # real records; generated images are never flat
        assert constant.sum() == 6 * 2 and (~constant).sum() == 6 * 2 * 2  # D step: 2 real; D + G: 2 fakes
        values = {round(v) for v in (rows[constant, 0] * 31 - 1).tolist()}
        assert values <= set(partition.tolist()) and values


def test_one_discriminator_is_the_plain_gan():
    records = _constant_records(12)
    gan = train_par_gan(records, ParGanSettings(1, steps=3, batch_size=4, latent_dim=4, log_every=0), seed=2)
    # a plain DCGAN loop with the same seeds: non-saturating loss, D step then G step on the same fakes
    # (latents and the one partition's batch order come from their own PAR-GAN sub-streams)
    torch.manual_seed(2)
    generator = par_gan.DCGANGenerator(4, SHAPE)
    discriminator = par_gan.build_discriminator(SHAPE, 0.0)
    g_opt = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    d_opt = torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    noise = torch.Generator().manual_seed(derive_seed(2, Stream.PAR_GAN, LATENT_NOISE))
    order = torch.Generator().manual_seed(derive_seed(2, Stream.PAR_GAN, PARTITION_BATCHES, 1))
    batches = torch.randperm(12, generator=order).split(4)
    for step in range(3):
        fakes = generator(torch.randn(4, 4, generator=noise))
        logits = discriminator(torch.cat([records[batches[step]], fakes.detach()]))
        d_loss = F.binary_cross_entropy_with_logits(logits, torch.tensor([[1.0]] * 4 + [[0.0]] * 4))
        d_opt.zero_grad()
        d_loss.backward()
        d_opt.step()
        g_loss = F.binary_cross_entropy_with_logits(discriminator(fakes), torch.ones(4, 1))
        g_opt.zero_grad()
        g_loss.backward()
        g_opt.step()
    for name, value in generator.state_dict().items():
        assert torch.allclose(gan.generator.state_dict()[name], value, atol=1e-6), name
    for name, value in discriminator.state_dict().items():
        assert torch.allclose(gan.discriminators[0].state_dict()[name], value, atol=1e-6), name


def test_generator_loss_is_the_mean_over_discriminators():
    torch.manual_seed(0)
    first, second = (nn.Sequential(nn.Flatten(), nn.Linear(64, 1)) for _ in range(2))
    a, b = torch.rand(3, *SHAPE), torch.rand(3, *SHAPE)
    single = [F.binary_cross_entropy_with_logits(d(x), torch.ones(3, 1))
              for d, x in ((first, a), (second, b))]
    assert generator_loss([first, second], [a, b]).item() == pytest.approx((single[0] + single[1]).item() / 2)


def test_membership_accuracy_on_synthetic_rankings():
    members = np.array([True, False, True, False])
    assert top_k_accuracy(np.array([4.0, 3.0, 2.0, 1.0]), members) == 0.5
    assert top_k_accuracy(np.array([4.0, 1.0, 3.0, 2.0]), members) == 1.0
    assert top_k_accuracy(np.array([1.0, 4.0, 2.0, 3.0]), members) == 0.0
    rng = np.random.default_rng(0)
    labels = rng.random(20000) < 0.5
    assert top_k_accuracy(rng.random(20000), labels) == pytest.approx(0.5, abs=0.02)
    noisy = labels + rng.normal(0, 1.0, 20000)
    scores = logan_metrics(noisy, labels)
    assert scores["auc"] == pytest.approx(roc_auc_score(labels, noisy)) and 0.6 < scores["accuracy"] < 0.8
    with pytest.raises(ValueError):
        top_k_accuracy(np.ones(3), np.zeros(3, dtype=bool))


def test_membership_split_is_disjoint_and_balanced(settings_factory, tmp_path):
    data = ImageDataset(_constant_records(40), torch.zeros(40, dtype=torch.long))
    split = random_split(data, 15, np.random.default_rng(0))
    candidates, is_member = split.candidates.images, split.is_member
    assert len(candidates) == 30 and is_member.sum() == 15
    keys = [c.flatten()[0].item() for c in candidates]
    assert len(set(keys)) == 30
    population = {c.flatten()[0].item() for c in split.population.images}
    assert len(split.population) == 10 and not population & set(keys)
    with pytest.raises(ValueError, match="do not fit"):
        random_split(data, 21, np.random.default_rng(0))
    # the experiment names the key before any training
    with pytest.raises(ConfigError) as error:
        run_experiment(settings_factory("+experiment=par_gan", "defense.par_gan.members=1000000"), tmp_path)
    assert error.value.key == "defense.par_gan.members"
    assert not list(tmp_path.iterdir())
    with pytest.raises(ConfigError) as error:  # a checkpoint at or past the last step of some k
        run_experiment(settings_factory("+experiment=par_gan", "defense.par_gan.steps=10",
                                        "defense.par_gan.quality_checkpoints=[5,10]"), tmp_path)
    assert error.value.key == "defense.par_gan.quality_checkpoints"
    assert not list(tmp_path.iterdir())


def test_black_box_scores_rank_a_generated_copy_first_and_white_box_aggregates():
    records = torch.rand(5, *SHAPE)
    samples = torch.cat([records[2:3], torch.rand(7, *SHAPE)])
    scores = nearest_sample_scores(records, samples)
    assert scores.argmax() == 2 and scores[2] == 0.0
    embedded = nearest_sample_scores(records, samples, neighbours=2, embed=lambda x: x.flatten(1).numpy() * 2)
    assert embedded.shape == (5,) and embedded[2] > embedded[np.arange(5) != 2].max() - 1e-9
    constant = [nn.Sequential(nn.Flatten(), nn.Linear(64, 1)) for _ in range(2)]
    for value, d in zip((1.0, 3.0), constant, strict=True):
        nn.init.zeros_(d[1].weight)
        nn.init.constant_(d[1].bias, value)
    scores = white_box_scores(constant, records)
    assert np.allclose(scores["max"], 3.0) and np.allclose(scores["mean"], 2.0)


def test_monte_carlo_attack_counts_samples_near_members_only():
    torch.manual_seed(0)
    records = torch.rand(40, *SHAPE)
    near = records[:20].repeat(10, 1, 1, 1) + 0.01 * torch.randn(200, *SHAPE)  # a generator that copies
    samples = torch.cat([near, torch.rand(800, *SHAPE)])
    scores = logan.monte_carlo_scores(records, samples, quantile=0.003)  # inside the 200 near pairs
    assert scores[:20].min() > scores[20:].max() and scores.min() >= 0 and scores.max() <= 1
    independent = logan.monte_carlo_scores(records, torch.rand(1000, *SHAPE), quantile=0.01)
    assert independent.sum() > 0  # epsilon from the distances themselves: some samples fall inside


def test_authors_regime_gives_every_discriminator_its_own_batch_and_two_steps(monkeypatch):
    records, seen = _constant_records(30), _record_discriminator_inputs(monkeypatch)
    settings = ParGanSettings(3, steps=2, batch_size=4, latent_dim=4, log_every=0,
                              batch_per_discriminator=True, discriminator_steps=2)
    train_par_gan(records, settings, seed=0)
    for inputs in seen:
        real = (torch.cat(inputs).flatten(1).std(1) == 0).sum()
        assert real == 2 * 2 * 4  # 2 generator steps x 2 discriminator steps x 4 own records


FORBIDDEN = re.compile(r"^(is_member|members?|membership|non_members|truth|labels?|images?|targets?|x|y)$")


def test_attacks_take_no_ground_truth():
    checked = 0
    for module in (logan, representation_inversion):
        for name, item in vars(module).items():
            own = callable(item) and getattr(item, "__module__", "") == module.__name__
            if own and not name[0].isupper():  # classes are settings and results
                for parameter in inspect.signature(item).parameters:
                    assert not FORBIDDEN.match(parameter), f"{module.__name__}.{name} takes `{parameter}`"
                checked += 1
    assert checked >= 7


def _toy_model() -> nn.Module:
    torch.manual_seed(0)
    return SeedCNN(SHAPE, 3, dropout=0.0).eval()


def test_inversion_of_a_shallow_layer_recovers_the_image():
    truth = torch.zeros(1, *SHAPE)
    truth[..., 2:6, 3:5] = 1.0  # a bar
    unrelated = torch.zeros(1, *SHAPE)
    unrelated[..., 0:2, :] = 1.0  # a line at the top
    model = _toy_model()
    with torch.no_grad():
        activation = layer_extractor(model, "body.2")(truth)["out"]
    result = invert_representation(model, "body.2", activation, SHAPE,
                                   RepresentationInversionSettings(iterations=150, lr=0.05, tv_weight=0.0))
    assert result.images.min() >= 0 and result.images.max() <= 1
    assert mse(result.images, truth).item() < 0.2 * mse(unrelated, truth).item()
    assert result.feature_loss.item() < 0.05
    with pytest.raises(ValueError, match="body.99"):
        layer_extractor(model, "body.99")


def _check(cfg) -> None:
    """What the entry point checks before a run: the schema and its rules, then the checks that need code."""
    check_settings(load_settings(cfg))


def test_config_errors_name_the_key(cfg_factory):
    cases = {
        "defense.par_gan.batch_size": ["+experiment=par_gan", "defense.par_gan.batch_size=62"],
        "defense.par_gan.discriminators": ["+experiment=par_gan", "defense.par_gan.discriminators=[]"],
        "defense.par_gan.steps": ["+experiment=par_gan", "defense.par_gan.steps=0"],
        "attack.representation_inversion.layers": ["+experiment=representation_inversion",
                                                   "attack.representation_inversion.layers=[conv9]"],
        "attack.representation_inversion.optimizer": ["+experiment=representation_inversion",
                                                      "attack.representation_inversion.optimizer=sgd"],
        "attack.representation_inversion.after_run": ["+experiment=representation_inversion",
                                                      "save_model=false"],
    }
    for key, overrides in cases.items():
        with pytest.raises(ConfigError) as error:
            _check(cfg_factory(*overrides))
        assert error.value.key == key, (key, str(error.value))
    _check(cfg_factory("+experiment=par_gan"))
    _check(cfg_factory("+experiment=representation_inversion"))


@pytest.fixture(scope="module")
def oracle_cache(farm_runs):
    return farm_runs.oracle_cache


def test_representation_inversion_scores_each_layer(settings_factory, tmp_path, oracle_cache):
    settings = settings_factory(
        "+experiment=representation_inversion", "attack.representation_inversion.images=2",
        "attack.representation_inversion.iterations=20",
        "attack.representation_inversion.layers=[body.2,head]",
        "evaluation.oracle.epochs=1", "evaluation.oracle.components=8",
        f"evaluation.oracle.cache_dir={oracle_cache}")
    torch.manual_seed(0)
    torch.save(SeedCNN((1, 28, 28), 10).state_dict(), tmp_path / "final_model.pt")
    summary = run_representation_inversion(tmp_path, settings)
    rows = {row["layer"]: row for row in summary["layers"]}
    assert rows["body.2"]["dimensions"] == 64 * 14 * 14 and rows["head"]["dimensions"] == 10
    assert rows["body.2"]["median_psnr"] > rows["head"]["median_psnr"] + 5  # 12544 numbers vs 10
    table = json.loads((tmp_path / "representation_inversion" / "table.json").read_text())
    assert [row["layer"] for row in table] == ["body.2", "head"]
    assert (tmp_path / "representation_inversion" / "grid.png").stat().st_size > 1000


@pytest.mark.simulation
def test_tiny_par_gan_run_writes_the_table(tmp_path, oracle_cache):
    result = subprocess.run(
        [sys.executable, "-m", "fl_privacy.run", "+experiment=par_gan", "defense.par_gan.members=40",
         "defense.par_gan.steps=3", "defense.par_gan.samples=30", "defense.par_gan.batch_size=10",
         "defense.par_gan.monte_carlo_samples=200", "defense.par_gan.quality_checkpoints=[1,2]",
         "evaluation.oracle.epochs=1", "evaluation.oracle.components=8",
         f"evaluation.oracle.cache_dir={oracle_cache}", f"hydra.run.dir={tmp_path}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = json.loads((tmp_path / "par_gan_table.json").read_text())
    assert [row["discriminators"] for row in rows] == [1, 5]
    for row in rows:
        for key in ("white_box_max", "white_box_mean", "black_box_pixel", "black_box_feature", "monte_carlo"):
            assert 0 <= row[f"{key}_accuracy"] <= 1 and 0 <= row[f"{key}_auc"] <= 1
        assert row["frechet_distance"] > 0 and 0 <= row["not_data_share"] <= 1
    assert (tmp_path / "par_gan_table.csv").read_text().startswith("discriminators,")
    assert (tmp_path / "samples_k5.png").stat().st_size > 500
    config = OmegaConf.create(json.loads((tmp_path / "summary.json").read_text())["config"])
    assert config.defense.par_gan.steps == 3
    # the leak-vs-quality curve: the two checkpoints, then the final generator, whose point is its row's
    curves = json.loads((tmp_path / "par_gan_quality_curves.json").read_text())
    for row in rows:
        points = curves[str(row["discriminators"])]
        assert [point["step"] for point in points] == [1, 2, 3]
        assert points[-1]["monte_carlo_auc"] == row["monte_carlo_auc"]
        assert points[-1]["frechet_distance"] == row["frechet_distance"]
        assert all(point["frechet_distance"] > 0 and 0 <= point["black_box_pixel_auc"] <= 1
                   for point in points)
