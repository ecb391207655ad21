"""Shared fixtures: compose configs through Hydra exactly as the entry point does."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from filelock import FileLock
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


@pytest.fixture(scope="session")
def mnist():
    """The embedded offline MNIST's training split (seed 0)."""
    from fl_privacy.config.schema import DataSettings
    from fl_privacy.data.datasets import load_splits

    data = DataSettings(name="mnist_offline", test_fraction=0.2, exclude_classes=[], root=None,
                        download=False)
    return load_splits(data, seed=0).train


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module's tests (fastest for small models on a shared CPU)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --- the suite's simulations, run once per session (tests/farm.py) ------------------------------------------

def pytest_configure(config):
    config.addinivalue_line("markers", "farm(*names): the test reads these simulations of tests/farm.py")


class Farm:
    """The run directories of the session's simulations, run on first use; with pytest-xdist (`-n`), by the
    first worker that asks, while the others wait for it (a file lock in the workers' shared folder)."""

    def __init__(self, root: Path, names: list[str]) -> None:
        self.root, self.names = root, names

    @property
    def oracle_cache(self) -> Path:
        """The session's oracle cache (the simulations' too; entries are keyed by the oracle's settings)."""
        return self.root / "oracle"

    def run_dir(self, name: str) -> Path:
        """`name`'s finished run directory; fails the test with its log's tail if it did not complete."""
        import farm

        assert name in self.names, f"mark the test with @pytest.mark.farm({name!r})"
        with FileLock(self.root / "farm.lock"):
            if not (self.root / "farm.log").exists():
                farm.run_farm(self.root, self.names)
        code = farm.exit_file(self.root, name)
        log = (self.root / "farm.log").read_text()[-3000:]
        assert code.exists() and code.read_text() == "0", f"{name} did not complete:\n{log}"
        return farm.run_dir(self.root, name)


@pytest.fixture(scope="session")
def farm_runs(request, tmp_path_factory) -> Farm:
    """The simulations the session's selected tests ask for (after -k / -m deselection)."""
    names = sorted({name for item in request.session.items for marker in item.iter_markers("farm")
                    for name in marker.args})
    base = tmp_path_factory.getbasetemp()
    root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "farm"
    root.mkdir(exist_ok=True)
    return Farm(root, names)
