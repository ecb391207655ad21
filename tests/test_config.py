"""Bad configs fail with one line naming the key, before data loading or Ray."""

import subprocess
import sys
from pathlib import Path

import pytest

from fl_privacy.config import validate
from fl_privacy.errors import ConfigError

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
]

GAN_BAD = [
    ("client.gan.victim_class=-1", "client.gan.victim_class"),
    ("client.gan.fake_pool=keep", "client.gan.fake_pool"),
    ("client.gan.generator_steps=0", "client.gan.generator_steps"),
    ("client.gan.start_accuracy=1.5", "client.gan.start_accuracy"),
    ("client.gan.generator_lr=0", "client.gan.generator_lr"),
    ("oracle.components=1", "oracle.components"),
]


@pytest.mark.parametrize("override,key", BAD)
def test_validation_names_the_key(cfg_factory, override, key):
    cfg = cfg_factory(override, "simulation.num_clients=2") if "roles={0" in override \
        else cfg_factory(override)
    with pytest.raises(ConfigError) as caught:
        validate(cfg)
    assert caught.value.key == key
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("override,key", GAN_BAD)
def test_gan_attack_validation_names_the_key(cfg_factory, override, key):
    with pytest.raises(ConfigError) as caught:
        validate(cfg_factory("+experiment=gan_attack", override))
    assert caught.value.key == key


PRESETS = sorted(p.stem for p in (ROOT / "conf" / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("preset", PRESETS)
def test_default_and_presets_are_valid(cfg_factory, preset):
    validate(cfg_factory())
    validate(cfg_factory(f"+experiment={preset}"))


@pytest.mark.parametrize("victim", [10, 0])  # not in MNIST; held by the adversary (partition 0)
def test_impossible_victim_class_fails_before_the_run(cfg_factory, tmp_path, victim):
    from fl_privacy.data.federation import build_federation
    from fl_privacy.evaluation.gan_attack import build_gan_monitor

    cfg = cfg_factory("+experiment=gan_attack", f"client.gan.victim_class={victim}")
    validate(cfg)
    with pytest.raises(ConfigError) as caught:
        build_gan_monitor(cfg, build_federation(cfg), tmp_path)
    assert caught.value.key == "client.gan.victim_class"


CAPTURE = ("strategy=gradient_capture",)
ATTACK = ("strategy=gradient_capture", "+attack=gradient_inversion")
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
    ((*ATTACK, "attack.name=telepathy"), "attack.name"),
    ((*ATTACK, "attack.name=inverting", "attack.label_mode=optimise"), "attack.label_mode"),
    ((*ATTACK, "attack.optimizer=sgd"), "attack.optimizer"),
    ((*ATTACK, "attack.iterations=0"), "attack.iterations"),
    ((*ATTACK, "attack.init.distribution=cauchy"), "attack.init.distribution"),
    ((*ATTACK, "attack.max_captures=0"), "attack.max_captures"),
    (("+attack=gradient_inversion", "attack.after_run=true"), "attack.after_run"),
]


@pytest.mark.parametrize("overrides,key", BAD_CAPTURE)
def test_capture_and_attack_keys_are_validated(cfg_factory, overrides, key):
    with pytest.raises(ConfigError) as caught:
        validate(cfg_factory(*overrides))
    assert caught.value.key == key


@pytest.mark.parametrize("preset", ["dlg", "idlg", "dlg_photos", "dlg_rounds", "inverting_fedavg",
                                    "label_restoration"])
def test_attack_presets_are_valid(cfg_factory, preset):
    cfg = cfg_factory(f"+experiment={preset}")
    validate(cfg)
    assert cfg.strategy.name == "gradient_capture" and cfg.attack.after_run


def test_dashboard_without_its_packages_fails_fast(cfg_factory, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "aiohttp" else real(name, *a))
    with pytest.raises(ConfigError, match="aiohttp"):
        validate(cfg_factory("simulation.dashboard=true"))


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
