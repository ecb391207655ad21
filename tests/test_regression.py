"""Regression guard: short versions of the headline experiments give the numbers pinned in tests/golden/.

The golden files were produced by `tests/regression_numbers.py` on the main before the "One house"
restructuring (same commands, old key names), so these tests show the redesign changed no number.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from regression_numbers import pinned_numbers

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).resolve().parent / "golden"

SHORT_RUNS = {
    "fedavg": ["+experiment=fedavg_noniid", "strategy.num_rounds=2", "strategy.warmup.epochs=1"],
    "gan": ["+experiment=gan_attack", "strategy.num_rounds=3", "strategy.warmup.epochs=1",
            "attack.gan.start_round=2", "attack.gan.start_accuracy=null", "attack.gan.generator_steps=5",
            "attack.gan.num_fakes=32", "evaluation.oracle.epochs=1",
            "evaluation.oracle.samples_per_round=64"],
    "dlg": ["+experiment=dlg", "simulation.num_clients=2", "attack.gradient_inversion.iterations=20"],
    "mia": ["+experiment=mia", "strategy.num_rounds=2", "strategy.capture.rounds=[2]",
            "strategy.warmup.epochs=1",
            # the attacks the golden file was made with (RMIA joined the default list later)
            "attack.membership.attacks=[loss,confidence,entropy,modified_entropy,shadow,lira_offline,lira_online]",
            "attack.membership.num_shadow=2", "attack.membership.num_reference=2",
            "attack.membership.training.epochs=1"],
}


def assert_same_numbers(actual, expected, where: str = "") -> None:
    """Equal structure; numbers equal to 1e-6 relative (float sums may differ in the last bits on other
    CPUs)."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict) and set(actual) == set(expected), \
            f"{where}: keys {sorted(set(actual) ^ set(expected))} differ"
        for key in expected:
            assert_same_numbers(actual[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), f"{where}: lengths differ"
        for index, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_same_numbers(a, e, f"{where}[{index}]")
    elif isinstance(expected, float) and not isinstance(expected, bool):
        assert isinstance(actual, int | float), f"{where}: {actual!r} is not a number"
        assert math.isclose(actual, expected, rel_tol=1e-6, abs_tol=1e-9), f"{where}: {actual} != {expected}"
    else:
        assert actual == expected, f"{where}: {actual!r} != {expected!r}"


@pytest.mark.simulation
@pytest.mark.parametrize("name", sorted(SHORT_RUNS))
def test_short_run_gives_the_pinned_numbers(name, tmp_path):
    run_dir = tmp_path / name
    overrides = [*SHORT_RUNS[name], f"hydra.run.dir={run_dir}"]
    if name == "gan":
        overrides.append(f"evaluation.oracle.cache_dir={tmp_path / 'oracle'}")
    result = subprocess.run([sys.executable, "-m", "fl_privacy.run", *overrides], cwd=ROOT,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    expected = json.loads((GOLDEN / f"{name}.json").read_text())
    assert_same_numbers(pinned_numbers(run_dir), expected, name)
