"""Regression guard: short versions of the headline experiments give the numbers pinned in tests/golden/.

The golden files were produced by `tests/regression_numbers.py` on the main before the "One house"
restructuring (same commands, old key names), so these tests show the redesign changed no number.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from farm import SHORT_RUNS
from regression_numbers import pinned_numbers

GOLDEN = Path(__file__).resolve().parent / "golden"

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
@pytest.mark.farm(*(f"short_{name}" for name in SHORT_RUNS))
@pytest.mark.parametrize("name", sorted(SHORT_RUNS))
def test_short_run_gives_the_pinned_numbers(name, farm_runs):
    run_dir = farm_runs.run_dir(f"short_{name}")
    expected = json.loads((GOLDEN / f"{name}.json").read_text())
    assert_same_numbers(pinned_numbers(run_dir), expected, name)
