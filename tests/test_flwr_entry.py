"""`flwr run .`: pyproject points at module-level apps that compose the same Hydra config."""

from importlib import import_module
from pathlib import Path

import pytest
from flwr.clientapp import ClientApp
from flwr.serverapp import ServerApp

from fl_privacy.config import Settings
from fl_privacy.errors import ConfigError
from fl_privacy.lab.flwr_entry import compose_settings, hydra_overrides

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: flwr depends on tomli
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def test_pyproject_components_are_the_entry_apps():
    flwr = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["flwr"]
    components = flwr["app"]["components"]
    apps = {}
    for role, spec in components.items():
        module, attribute = spec.split(":")
        apps[role] = getattr(import_module(module), attribute)
    assert isinstance(apps["serverapp"], ServerApp) and isinstance(apps["clientapp"], ClientApp)
    assert (ROOT / "conf" / "experiment" / f"{flwr['app']['config']['experiment']}.yaml").exists()
    assert flwr["federations"]["local-simulation"]["options"]["num-supernodes"] == 10


def test_run_config_becomes_hydra_overrides():
    run_config = {"experiment": "fedavg_noniid",
                  "overrides": "strategy.num_rounds=2 'client.roles={3: honest}'"}
    assert hydra_overrides(run_config) == ["+experiment=fedavg_noniid", "strategy.num_rounds=2",
                                           "client.roles={3: honest}"]
    assert hydra_overrides({"experiment": "", "overrides": ""}) == []


def test_composed_config_matches_the_preset_and_is_validated():
    settings = compose_settings(("+experiment=fedavg_noniid", "strategy.num_rounds=2"))
    assert isinstance(settings, Settings)
    assert settings.strategy.num_rounds == 2 and settings.simulation.num_clients == 10
    with pytest.raises(ConfigError, match="strategy.num_rounds"):
        compose_settings(("strategy.num_rounds=0",))
