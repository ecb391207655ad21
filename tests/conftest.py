"""Shared fixtures: compose configs through Hydra exactly as the entry point does."""

from __future__ import annotations

import os
import subprocess
import time
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
    config.addinivalue_line("markers", "own_runs: a farm reader that also starts runs of its own (scheduled "
                                       "first among the farm's readers)")


def pytest_collection_modifyitems(items):
    """Longest work first balances the xdist workers best: modules with simulations of their own first, then
    the other modules, then the modules that read the farm's simulations (so the workers run everything
    else while the farm computes), those marked `own_runs` (runs of their own besides) among them first.
    A stable sort: every module's tests stay together and in order, as `--dist loadscope
    --no-loadscope-reorder` needs."""

    def modules_marked(name: str) -> set:
        return {item.module for item in items if item.get_closest_marker(name)}

    farm, own_runs = modules_marked("farm"), modules_marked("own_runs")
    simulating = modules_marked("simulation")

    def rank(item) -> tuple[bool, bool]:
        if item.module in farm:
            return True, item.module not in own_runs
        return False, item.module not in simulating

    items.sort(key=rank)


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread_per_worker():
    """With xdist, each worker's in-process tests use one torch thread: two workers, the farm and the
    tests' own simulations share two cores, and torch's spinning threads slow each other down."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)


class Farm:
    """The run directories of the session's simulations. The first worker to start (or the only process
    without pytest-xdist) starts the farm in the background; a test that reads a simulation waits for that
    simulation only."""

    def __init__(self, root: Path, names: list[str]) -> None:
        self.root, self.names = root, names
        self.process: subprocess.Popen | None = None
        with FileLock(root / "farm.lock"):
            if not (root / "farm.log").exists():
                import farm

                self.process = farm.start_farm(root, names)

    @property
    def oracle_cache(self) -> Path:
        """The session's oracle cache (the simulations' too; entries are keyed by the oracle's settings)."""
        return self.root / "oracle"

    def run_dir(self, name: str, timeout: float = 1800) -> Path:
        """`name`'s finished run directory; fails the test with the farm log's tail if it did not complete."""
        import farm

        assert name in self.names, f"mark the test with @pytest.mark.farm({name!r})"
        code, deadline = farm.exit_file(self.root, name), time.monotonic() + timeout
        while not code.exists() and not farm.done_file(self.root).exists() and time.monotonic() < deadline:
            time.sleep(1)
        log = (self.root / "farm.log").read_text()[-3000:]
        assert code.exists() and code.read_text() == "0", f"{name} did not complete:\n{log}"
        return farm.run_dir(self.root, name)

    def finish(self) -> None:
        """Wait for the farm this process started (the other worker may still need its simulations)."""
        if self.process is not None:
            self.process.wait()


@pytest.fixture(scope="session", autouse=True)
def farm_runs(request, tmp_path_factory):
    """The simulations the session's selected tests ask for (after -k / -m deselection), started in the
    background before the first test."""
    names = sorted({name for item in request.session.items for marker in item.iter_markers("farm")
                    for name in marker.args})
    if not names:
        yield None
        return
    base = tmp_path_factory.getbasetemp()
    root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "farm"
    root.mkdir(exist_ok=True)
    farm = Farm(root, names)
    yield farm
    farm.finish()
