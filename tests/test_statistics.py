"""The one statistics standard of every table: per-seed values, bootstrap intervals clipped to the range
for bounded numbers, t only for unbounded means over >= 5 seeds, exact proportions, Holm, diverged seeds."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from fl_privacy.report.statistics import (
    NON_NEGATIVE,
    UNIT,
    exact_proportion,
    holm,
    metric_bounds,
    per_seed_cell,
    summarise,
    summary_cell,
)


def test_a_bounded_number_gets_a_bootstrap_interval_inside_its_range():
    # the README's ε = 8 row: a t interval over these 3 seeds is 0.350 ± 0.796, reaching below 0
    bounds = [0.68, 0.34, 0.04]
    t_half = stats.t.ppf(0.975, 2) * stats.tstd(bounds) / math.sqrt(3)
    assert 0.35 - t_half < 0
    summary = summarise(bounds, NON_NEGATIVE)
    assert summary.method == "bootstrap" and 0 <= summary.low <= summary.mean <= summary.high <= 0.68
    near_one = summarise([0.99, 1.0, 0.97, 1.0], UNIT)
    assert near_one.high <= 1.0 and near_one.low >= 0.97


def test_t_only_for_unbounded_means_over_five_seeds_or_more():
    three = summarise([1.0, 2.0, 4.0])
    assert math.isnan(three.low) and "5 seeds" in three.method and summary_cell(three) == "2.333"
    values = [1.0, 2.0, 4.0, 3.0, 5.0]
    five = summarise(values)
    half = stats.t.ppf(0.975, 4) * stats.tstd(values) / math.sqrt(5)
    assert five.method == "t" and (five.low, five.high) == pytest.approx((3 - half, 3 + half))


def test_a_diverged_seed_is_reported_not_dropped():
    summary = summarise([0.9, None, 0.8, math.inf], UNIT)
    assert summary.n == 4 and summary.diverged == 2 and summary.mean == pytest.approx(0.85)
    assert summary_cell(summary).endswith("(2 of 4 diverged)")
    assert per_seed_cell([0.9, None, 0.8]) == "0.90, diverged, 0.80"


def test_exact_proportion_is_clopper_pearson():
    share, low, high = exact_proportion(0, 10)
    assert share == 0 and low == 0 and high == pytest.approx(1 - 0.025 ** (1 / 10), rel=1e-6)


def test_holm_adjusts_step_down_and_keeps_the_order():
    # m = 4: sorted 0.01, 0.03, 0.04, 0.2 -> 0.04, 0.09, max(0.09, 0.08) = 0.09, 0.2
    assert holm([0.01, 0.04, 0.03, 0.2]) == pytest.approx([0.04, 0.09, 0.09, 0.2])
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])


def test_metric_names_give_their_ranges():
    assert metric_bounds("final.accuracy") == UNIT and metric_bounds("mia.rmia.auc") == UNIT
    assert metric_bounds("dp_audit.epsilon_lower_bound") == NON_NEGATIVE
    assert metric_bounds("final.loss") is None
