"""Bad configs fail with one line naming the key, before data loading or Ray."""

import subprocess
import sys
import typing
from pathlib import Path

import pytest

from fl_privacy.config import load_settings
from fl_privacy.errors import ConfigError
from fl_privacy.lab.preflight import check_settings

ROOT = Path(__file__).resolve().parents[1]

BAD = [
    ("strategy.num_rounds=0", "strategy.num_rounds"),
    ("strategy.num_rounds=-3", "strategy.num_rounds"),
    ("strategy.fraction_train=0", "strategy.fraction_train"),
    ("strategy.fraction_train=1.5", "strategy.fraction_train"),
    ("+client.roles={0:honest,1:honest,2:honest}", "client.roles"),
    ("data.name=imagenet", "data.name"),
    ("partition.name=by_hash", "partition.name"),
    ("client.role=spy", "client.role"),
    ("+client.roles={12:honest}", "client.roles.12"),
    ("client.optimizer=rmsprop", "client.optimizer"),
    ("model.norm=batch", "model.norm"),
    ("simulation.dashboard_port=80", "simulation.dashboard_port"),
    ("simulation.dashboard_port=70000", "simulation.dashboard_port"),
]

GAN_BAD = [
    ("attack.gan.victim_class=-1", "attack.gan.victim_class"),
    ("attack.gan.fake_pool=keep", "attack.gan.fake_pool"),
    ("attack.gan.generator_steps=0", "attack.gan.generator_steps"),
    ("attack.gan.start_accuracy=1.5", "attack.gan.start_accuracy"),
    ("attack.gan.generator_lr=0", "attack.gan.generator_lr"),
    ("evaluation.oracle.components=1", "evaluation.oracle.components"),
    ("evaluation.oracle.planted_fraction=0.7", "evaluation.oracle.planted_fraction"),
    ("evaluation.oracle.judge_seed=-1", "evaluation.oracle.judge_seed"),
]


@pytest.mark.parametrize("override,key", BAD)
def test_validation_names_the_key(cfg_factory, override, key):
    cfg = cfg_factory(override, "simulation.num_clients=2") if "roles={0" in override \
        else cfg_factory(override)
    with pytest.raises(ConfigError) as caught:
        load_settings(cfg)
    assert caught.value.key == key
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("override,key", GAN_BAD)
def test_gan_attack_validation_names_the_key(cfg_factory, override, key):
    with pytest.raises(ConfigError) as caught:
        load_settings(cfg_factory("+experiment=gan_attack", override))
    assert caught.value.key == key


def test_unknown_key_is_rejected(cfg_factory):
    with pytest.raises(ConfigError) as caught:
        load_settings(cfg_factory("+anytypo=1"))
    assert caught.value.key == "anytypo"
    assert "anytypo" in str(caught.value) and "\n" not in str(caught.value)


PRESETS = sorted(p.stem for p in (ROOT / "conf" / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("preset", PRESETS)
def test_default_and_presets_are_valid(cfg_factory, preset):
    load_settings(cfg_factory())
    load_settings(cfg_factory(f"+experiment={preset}"))


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_composes_validates_and_passes_preflight(settings_factory, preset):
    settings = settings_factory(f"+experiment={preset}")
    check_settings(settings)


def _choices(annotation) -> set:
    return set(typing.get_args(annotation))


def test_schema_choices_match_the_code_registries():
    from fl_privacy.apps.client_app import ROLES
    from fl_privacy.attacks.membership_inference import ATTACKS as MIA_ATTACKS
    from fl_privacy.config import schema
    from fl_privacy.data.datasets import DATASETS
    from fl_privacy.data.partition import PARTITIONERS
    from fl_privacy.defenses.noise_schedules import NOISE_SCHEDULES
    from fl_privacy.models import MODELS
    from fl_privacy.training import OPTIMIZERS
    from strategies import STRATEGIES

    def field(model, name):
        return model.model_fields[name].annotation

    (mia_item,) = typing.get_args(field(schema.MembershipSettings, "attacks"))
    pairs = [
        (DATASETS, field(schema.DataSettings, "name")),
        (PARTITIONERS, field(schema.PartitionSettings, "name")),
        (MODELS, field(schema.ModelSettings, "name")),
        (STRATEGIES, field(schema.StrategySettings, "name")),
        (ROLES, schema.Role),
        (MIA_ATTACKS, mia_item),
        (NOISE_SCHEDULES, field(schema.NoiseDecaySettings, "schedule")),
        (OPTIMIZERS, schema.Optimizer),
    ]
    for registry, annotation in pairs:
        assert typing.get_origin(annotation) is typing.Literal, annotation
        assert set(registry) == _choices(annotation), annotation


def test_gradient_inversion_choices_are_the_registry_and_a_new_attack_registers_where_it_is_defined(
        settings_factory, monkeypatch):
    """An unknown name stops before the run with the registry's names; an attack decorated anywhere is then a
    valid choice and is what `run_attack` calls (no schema or dispatch edit)."""
    from fl_privacy.attacks import registry

    unknown = settings_factory("attack.gradient_inversion.name=mirror")
    with pytest.raises(ConfigError, match=r"attack.gradient_inversion.name='mirror'.*best, dlg, fedavg"):
        check_settings(unknown)
    monkeypatch.setattr(registry, "_ATTACKS", dict(registry._ATTACKS))
    calls = []

    @registry.inversion_attack("mirror", needs="any", options=lambda attack, progress: attack.iterations)
    def mirror(model, payload, options):
        calls.append(options)
        return "mirrored"

    check_settings(unknown)
    options = registry.attack_options(unknown.attack.gradient_inversion)
    payload = type("Payload", (), {"is_gradient": True})()
    assert registry.run_attack("mirror", None, payload, options) == "mirrored" and calls == [300]


@pytest.mark.parametrize("victim", [10, 0])  # not in MNIST; held by the adversary (partition 0)
def test_impossible_victim_class_fails_before_the_run(settings_factory, victim):
    from fl_privacy.data.federation import build_federation
    from fl_privacy.lab.preflight import check_before_run

    settings = settings_factory("+experiment=gan_attack", f"attack.gan.victim_class={victim}")
    check_settings(settings)
    with pytest.raises(ConfigError) as caught:
        check_before_run(settings, build_federation(settings.federation))
    assert caught.value.key == "attack.gan.victim_class"


CAPTURE = ("strategy=gradient_capture",)
ATTACK = ("strategy=gradient_capture",)  # the attack.gradient_inversion node is always present
BAD_CAPTURE = [
    (("strategy.name=spy",), "strategy.name"),
    (("client.update_mode=fedsgd",), "client.update_mode"),  # FedSGD needs the capturing server
    ((*CAPTURE, "client.update_mode=sgd"), "client.update_mode"),
    ((*CAPTURE, "client.examples_per_round=0"), "client.examples_per_round"),
    ((*CAPTURE, "strategy.capture.rounds=[31]"), "strategy.capture.rounds"),
    ((*CAPTURE, "strategy.capture.rounds=[]"), "strategy.capture.rounds"),
    ((*CAPTURE, "strategy.capture.partitions=[10]"), "strategy.capture.partitions"),
    ((*CAPTURE, "strategy.capture.update_mode=fedprox"), "strategy.capture.update_mode"),
    ((*CAPTURE, "strategy.capture.batch_size=0"), "strategy.capture.batch_size"),
    (("model.init=xavier",), "model.init"),
    ((*ATTACK, "attack.gradient_inversion.name=inverting", "attack.gradient_inversion.label_mode=optimise"),
     "attack.gradient_inversion.label_mode"),
    ((*ATTACK, "attack.gradient_inversion.optimizer=sgd"), "attack.gradient_inversion.optimizer"),
    ((*ATTACK, "attack.gradient_inversion.iterations=0"), "attack.gradient_inversion.iterations"),
    ((*ATTACK, "attack.gradient_inversion.init.distribution=cauchy"),
     "attack.gradient_inversion.init.distribution"),
    ((*ATTACK, "attack.gradient_inversion.max_captures=0"), "attack.gradient_inversion.max_captures"),
    (("attack.gradient_inversion.after_run=true",), "attack.gradient_inversion.after_run"),
    (("model.imprint_bins=8",), "model.imprint_bins"),  # only a malicious capturing server imprints
    (("model.imprint_bins=-1",), "model.imprint_bins"),
    ((*ATTACK, "attack.gradient_inversion.name=imprint"), "attack.gradient_inversion.name"),
]


@pytest.mark.parametrize("overrides,key", BAD_CAPTURE)
def test_capture_and_attack_keys_are_validated(cfg_factory, overrides, key):
    with pytest.raises(ConfigError) as caught:
        load_settings(cfg_factory(*overrides))
    assert caught.value.key == key


@pytest.mark.parametrize("preset", ["dlg", "idlg", "dlg_photos", "dlg_rounds", "inverting_fedavg",
                                    "label_restoration", "imprint"])
def test_attack_presets_are_valid(cfg_factory, preset):
    settings = load_settings(cfg_factory(f"+experiment={preset}"))
    assert settings.strategy.name == "gradient_capture" and settings.attack.gradient_inversion.after_run


def test_dashboard_without_its_packages_fails_fast(settings_factory, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "aiohttp" else real(name, *a))
    with pytest.raises(ConfigError, match="aiohttp"):
        check_settings(settings_factory("simulation.dashboard=true"))


def run_entry(*overrides, cwd):
    return subprocess.run([sys.executable, "-m", "fl_privacy.run", *overrides,
                           f"hydra.run.dir={cwd}/run"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("override,key", [
    ("strategy.num_rounds=0", "strategy.num_rounds"),
    ("client.role=spy", "client.role"),
    ("partition=one_class", "simulation.num_clients"),
])
def test_entry_point_exits_nonzero_with_one_line_before_ray(tmp_path, override, key):
    extra = ("simulation.num_clients=5000",) if key == "simulation.num_clients" else ()
    result = run_entry(override, *extra, cwd=tmp_path)
    assert result.returncode == 2
    errors = [line for line in (result.stdout + result.stderr).splitlines() if "config error" in line]
    assert len(errors) == 1 and key in errors[0]
    assert "Ray" not in result.stdout + result.stderr
    assert not (tmp_path / "run" / "metrics.jsonl").exists()
