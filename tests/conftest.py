"""Shared fixtures: compose configs through Hydra exactly as the entry point does."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from fl_privacy.config import load_settings, register_schema

CONF_DIR = str(Path(__file__).resolve().parents[1] / "conf")


def make_cfg(*overrides: str):
    """The config `python -m fl_privacy.run OVERRIDES` would run."""
    register_schema()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose("config", overrides=list(overrides))


def make_settings(*overrides: str):
    """The validated `Settings` that `python -m fl_privacy.run OVERRIDES` would run."""
    return load_settings(make_cfg(*overrides))


@pytest.fixture
def cfg_factory():
    return make_cfg


@pytest.fixture
def settings_factory():
    return make_settings


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module's tests (fastest for small models on a shared CPU)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
