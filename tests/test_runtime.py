"""Ray backend plumbing: a local Ray by default, `simulation.ray_address` joins a running cluster."""

import pytest

from fl_privacy.config import load_settings
from fl_privacy.devices import client_gpu_share
from fl_privacy.errors import ConfigError
from fl_privacy.lab.runtime.ray_runtime import backend_config


def test_local_ray_by_default(settings_factory):
    config = backend_config(settings_factory("simulation.num_cpus=2").simulation)
    assert config["init_args"] == {"include_dashboard": False, "num_cpus": 2}
    assert config["client_resources"] == {"num_cpus": 1.0, "num_gpus": 0.0}


def test_ray_address_joins_that_cluster(cfg_factory):
    cfg = cfg_factory("simulation.ray_address=127.0.0.1:6379", "simulation.client_resources.num_cpus=0.5")
    settings = load_settings(cfg)
    config = backend_config(settings.simulation)
    assert config["init_args"] == {"address": "127.0.0.1:6379"}  # ray.init refuses num_cpus with an address
    assert config["client_resources"]["num_cpus"] == 0.5


@pytest.mark.parametrize("override", ["simulation.num_cpus=2", "simulation.dashboard=true"])
def test_cluster_settings_with_an_address_are_config_errors(cfg_factory, override):
    with pytest.raises(ConfigError, match=override.split("=")[0]):
        load_settings(cfg_factory("simulation.ray_address=auto", override))


def test_client_actors_share_one_gpu_only_when_the_run_computes_on_cuda():
    assert client_gpu_share("cpu", None, client_cpus=1, total_cpus=4) == 0.0
    assert client_gpu_share("cuda", None, client_cpus=1, total_cpus=4) == 0.25  # four actors on one GPU
    assert client_gpu_share("cuda", 0.5, client_cpus=1, total_cpus=4) == 0.5  # what the user asked for
